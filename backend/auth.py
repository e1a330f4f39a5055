"""Who may call what: API keys for services, bearer tokens for people, one scope per endpoint.

An endpoint names the scope it needs next to its route:

    @registry.handles(rule="/items", method="POST", authenticators=requires_scope("items:write"))

Two kinds of caller pass the same check:
- a service sends its key in the `AUTH_HEADER` header. `AUTH_KEY` belongs to the
  client named "default", which has every scope; `API_CLIENTS` adds named clients,
  each with the scopes it may use;
- a person sends `Authorization: Bearer <access token>` from `POST /auth/login`. Their
  role grants the scopes: `ROLES` are ranked lowest first, and each role has the
  `ROLE_SCOPES` of its own and of every role below it.

No credentials, or a wrong, expired or revoked one: 401. Valid credentials without the
scope: 403 naming it. The caller is in `g.caller` for the rest of the request.
Bearer tokens are checked by the accounts feature (backend/features/accounts/access.py).
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import NoReturn

from flask import Flask, current_app, g, request
from flask_rebar import errors
from flask_rebar.authenticators import Authenticator

from backend.config_loading import ConfigError
from backend.features.accounts.access import caller_of_access_token

logger = logging.getLogger(__name__)

DEFAULT_CLIENT = "default"
EVERY_SCOPE = "*"
BEARER = "bearer "


@dataclass(frozen=True)
class Caller:
    """An API client, or a signed-in user in one of their sessions."""

    scopes: frozenset[str]
    client: str | None = None
    user_id: int | None = None
    role: str | None = None
    session_id: int | None = None

    def has_scope(self, scope: str) -> bool:
        return EVERY_SCOPE in self.scopes or scope in self.scopes

    def __str__(self) -> str:
        return f"user={self.user_id}" if self.user_id is not None else f"client={self.client}"


@dataclass(frozen=True)
class ApiClient:
    name: str
    key_digest: bytes
    scopes: frozenset[str]


def current_caller() -> Caller:
    """The caller of an endpoint with an authenticator (they all have one but /auth's)."""
    return g.caller


def role_at_least(role: str) -> bool:
    """Whether the caller is a user of this role or a higher one. A role that ROLES does
    not list (removed in config) is held by nobody, and the caller's grants nothing."""
    caller, ranks = current_caller(), current_app.config["ROLES"]
    if caller.role not in ranks or role not in ranks:
        return False
    return ranks.index(caller.role) >= ranks.index(role)


def init_auth(app: Flask) -> None:
    """Digest every configured key once, work out each role's scopes, and refuse scopes
    no endpoint declares.

    Call after the API is registered: the declared scopes come from its endpoints.
    """
    known = declared_scopes(app) | {EVERY_SCOPE}
    clients = {
        DEFAULT_CLIENT: {"key": app.config["AUTH_KEY"], "scopes": [EVERY_SCOPE]},
        **app.config["API_CLIENTS"],
    }
    for name, client in clients.items():
        _refuse_unknown(f"API_CLIENTS[{name!r}]", client["scopes"], known)
    app.extensions["api_clients"] = [
        ApiClient(name, _digest(str(client["key"])), frozenset(client["scopes"]))
        for name, client in clients.items()
        if client["key"]
    ]
    app.extensions["role_scopes"] = _role_scopes(app.config, known)
    if app.config["AUTH_DISABLED"]:
        logger.warning("AUTH_DISABLED: every API request is allowed without credentials.")


def _role_scopes(config: dict, known: set[str]) -> dict[str, frozenset[str]]:
    roles, granted = config["ROLES"], config["ROLE_SCOPES"]
    if set(granted) - set(roles):
        raise ConfigError(
            f"Config error: ROLE_SCOPES names roles {sorted(set(granted) - set(roles))} "
            f"that are not in ROLES {roles}."
        )
    scopes: dict[str, frozenset[str]] = {}
    below: frozenset[str] = frozenset()
    for role in roles:
        _refuse_unknown(f"ROLE_SCOPES[{role!r}]", granted.get(role, []), known)
        scopes[role] = below = below | frozenset(granted.get(role, []))
    return scopes


def _refuse_unknown(where: str, scopes: list[str], known: set[str]) -> None:
    unknown = set(scopes) - known
    if unknown:
        raise ConfigError(
            f"Config error: {where} has unknown scopes {sorted(unknown)}; "
            f"the endpoints declare {sorted(known - {EVERY_SCOPE})}."
        )


def declare_scope(app: Flask, scope: str) -> None:
    """For endpoints outside the API registry (GET /metrics): call before init_auth."""
    app.extensions.setdefault("scopes_outside_api", set()).add(scope)


def declared_scopes(app: Flask) -> set[str]:
    """The scopes the API's endpoints need, the scheduler API's (backend/scheduler), and
    those declared with declare_scope."""
    outside_api = {app.config["SCHEDULER_API_SCOPE"], *app.extensions.get("scopes_outside_api", ())}
    return outside_api | {
        authenticator.scope
        for registry in app.extensions["rebar"]["handler_registries"]
        for methods in registry.paths.values()
        for definition in methods.values()
        for authenticator in definition.authenticators
        if isinstance(authenticator, ScopeAuthenticator) and authenticator.scope
    }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def find_client(presented_key: str) -> ApiClient | None:
    """The client whose key this is, compared in constant time.

    Every configured key is compared, even after a match, so the time taken does
    not tell an attacker which client's key was close.
    """
    presented = _digest(presented_key)
    found = None
    for client in current_app.extensions["api_clients"]:
        if hmac.compare_digest(presented, client.key_digest):
            found = client
    return found


def scopes_of_role(role: str) -> frozenset[str]:
    # A role no longer in ROLES (removed from config) grants nothing.
    return current_app.extensions["role_scopes"].get(role, frozenset())


class ScopeAuthenticator(Authenticator):
    """An API key in a header, or a bearer token, with the scope the endpoint needs;
    `users_only` for a person's own account, where a key has nothing to act on.

    Like rebar's HeaderScopeAuthenticator, with keys, header and roles read from the
    current app, so every app (and every test) carries its own configuration; comparing
    digests means a non-ASCII header cannot raise. One authenticator for both kinds
    of credential: given a list, rebar would report the first one's error, a 401,
    where the caller's credential was valid and only lacked the scope (403).
    """

    def __init__(self, scope: str | None = None, users_only: bool = False) -> None:
        self.name = "apiKey"  # the key's security scheme in the OpenAPI document
        self.scope = scope
        self.users_only = users_only

    @property
    def header(self) -> str:
        return current_app.config["AUTH_HEADER"]

    def authenticate(self) -> None:
        caller = self._caller()
        if self.scope and not caller.has_scope(self.scope):
            who = "This API key" if caller.user_id is None else f"The role {caller.role}"
            raise errors.Forbidden(
                f"{who} lacks the scope {self.scope}.", {"missing_scope": self.scope}
            )
        g.caller = caller

    def _caller(self) -> Caller:
        authorization = request.headers.get("Authorization", "")
        if authorization[: len(BEARER)].lower() == BEARER:
            return self._user(authorization[len(BEARER) :].strip())
        if self.users_only:
            self._refuse_clients()
        if current_app.config["AUTH_DISABLED"]:
            return Caller(frozenset({EVERY_SCOPE}), client=DEFAULT_CLIENT)
        return self._client()

    def _refuse_clients(self) -> NoReturn:
        if request.headers.get(self.header):
            raise errors.Forbidden(
                "Only a signed-in user can call this: send the bearer token from "
                "POST /api/v1/auth/login, not an API key."
            )
        raise errors.Unauthorized(
            "Missing bearer token: sign in with POST /api/v1/auth/login and send "
            "Authorization: Bearer <access_token>."
        )

    def _client(self) -> Caller:
        presented = request.headers.get(self.header)
        if not presented:
            raise errors.Unauthorized(
                f"Missing API key: send it in the {self.header} header, "
                "or a bearer token in the Authorization header."
            )
        client = find_client(presented)
        if client is None:
            raise errors.Unauthorized("Invalid API key.")
        return Caller(client.scopes, client=client.name)

    def _user(self, token: str) -> Caller:
        found = caller_of_access_token(token)
        if found is None:
            raise errors.Unauthorized("Invalid, expired or revoked token: sign in again.")
        user_id, role, session_id = found
        return Caller(scopes_of_role(role), user_id=user_id, role=role, session_id=session_id)


def requires_scope(scope: str) -> ScopeAuthenticator:
    """An API key with the scope, or a bearer token whose role grants it."""
    return ScopeAuthenticator(scope)


def requires_user(scope: str) -> ScopeAuthenticator:
    """A bearer token whose role grants the scope: for a person's own account."""
    return ScopeAuthenticator(scope, users_only=True)
