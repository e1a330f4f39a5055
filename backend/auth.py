"""API keys that carry scopes: the authenticator of every API endpoint.

Clients send their key in the `AUTH_HEADER` header. `AUTH_KEY` belongs to the client
named "default", which has every scope; `API_CLIENTS` adds named clients, each with
the scopes it may use. An endpoint names the scope it needs next to its route:

    @registry.handles(rule="/items", method="POST", authenticators=requires_scope("items:write"))

A missing or unknown key gets 401; a known key without the scope gets 403. The name
of the calling client is in `g.api_client` for the rest of the request.
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from flask_rebar import errors
from flask_rebar.authenticators import Authenticator

from backend.config_loading import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CLIENT = "default"
EVERY_SCOPE = "*"


@dataclass(frozen=True)
class ApiClient:
    name: str
    key_digest: bytes
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return EVERY_SCOPE in self.scopes or scope in self.scopes


def init_auth(app: Flask) -> None:
    """Digest every configured key once, and refuse scopes no endpoint declares.

    Call after the API is registered: the declared scopes come from its endpoints.
    """
    clients = {
        DEFAULT_CLIENT: {"key": app.config["AUTH_KEY"], "scopes": [EVERY_SCOPE]},
        **app.config["API_CLIENTS"],
    }
    known = declared_scopes(app) | {EVERY_SCOPE}
    for name, client in clients.items():
        unknown = set(client["scopes"]) - known
        if unknown:
            raise ConfigError(
                f"Config error: API_CLIENTS[{name!r}] has unknown scopes {sorted(unknown)}; "
                f"the endpoints declare {sorted(known - {EVERY_SCOPE})}."
            )
    app.extensions["api_clients"] = [
        ApiClient(name, _digest(str(client["key"])), frozenset(client["scopes"]))
        for name, client in clients.items()
        if client["key"]
    ]
    if app.config["AUTH_DISABLED"]:
        logger.warning("AUTH_DISABLED: every API request is allowed without a key.")


def declared_scopes(app: Flask) -> set[str]:
    """The scopes the API's endpoints need, and the scheduler API's (backend/scheduler)."""
    return {app.config["SCHEDULER_API_SCOPE"]} | {
        authenticator.scope
        for registry in app.extensions["rebar"]["handler_registries"]
        for methods in registry.paths.values()
        for definition in methods.values()
        for authenticator in definition.authenticators
        if isinstance(authenticator, ApiKeyAuthenticator) and authenticator.scope
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


class ApiKeyAuthenticator(Authenticator):
    """An API key in a header, like rebar's HeaderApiKeyAuthenticator, with keys, header
    and scopes read from the app.

    Rebar's own class holds one set of keys and one header for the process; reading
    them from the current app lets every app (and every test) carry its own
    configuration, and comparing digests means a non-ASCII header cannot raise.
    """

    def __init__(self, scope: str | None = None) -> None:
        self.name = "apiKey"
        self.scope = scope

    @property
    def header(self) -> str:
        return current_app.config["AUTH_HEADER"]

    def authenticate(self) -> None:
        if current_app.config["AUTH_DISABLED"]:
            g.api_client = DEFAULT_CLIENT
            return
        presented = request.headers.get(self.header)
        if not presented:
            raise errors.Unauthorized(f"Missing API key: send it in the {self.header} header.")
        client = find_client(presented)
        if client is None:
            raise errors.Unauthorized("Invalid API key.")
        if self.scope and not client.has_scope(self.scope):
            raise errors.Forbidden(
                f"This API key lacks the scope {self.scope}.", {"missing_scope": self.scope}
            )
        g.api_client = client.name


def requires_scope(scope: str) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(scope)
