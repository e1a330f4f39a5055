"""API-key authentication: the default authenticator of every API endpoint.

Clients send their key in the `AUTH_HEADER` header. `AUTH_KEY` is the key of the
client named "default"; `API_CLIENTS` adds named clients. The name of the client
that called is in `g.api_client` for the rest of the request.
"""

import hashlib
import hmac

from flask import Flask, current_app, g, request
from flask_rebar import errors
from flask_rebar.authenticators import HeaderApiKeyAuthenticator

DEFAULT_CLIENT = "default"


def init_auth(app: Flask) -> None:
    """Digest every configured key once, so a request compares fixed-length bytes."""
    keys = {DEFAULT_CLIENT: app.config["AUTH_KEY"]}
    keys.update({name: client["key"] for name, client in app.config["API_CLIENTS"].items()})
    app.extensions["api_key_digests"] = {
        name: _digest(str(key)) for name, key in keys.items() if key
    }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def find_client(presented_key: str) -> str | None:
    """Name of the client whose key this is, compared in constant time.

    Every configured key is compared, even after a match, so the time taken does
    not tell an attacker which client's key was close.
    """
    presented = _digest(presented_key)
    found = None
    for name, digest in current_app.extensions["api_key_digests"].items():
        if hmac.compare_digest(presented, digest):
            found = name
    return found


class ApiKeyAuthenticator(HeaderApiKeyAuthenticator):
    """Rebar's header API-key scheme, with keys and header name read from the app.

    Rebar's own class holds one set of keys for the process; reading them from the
    current app lets every app (and every test) carry its own configuration, and
    comparing digests means a non-ASCII header cannot raise.
    """

    def __init__(self) -> None:
        self.name = "apiKey"

    @property
    def header(self) -> str:
        return current_app.config["AUTH_HEADER"]

    def authenticate(self) -> None:
        presented = request.headers.get(self.header)
        if not presented:
            raise errors.Unauthorized(f"Missing API key: send it in the {self.header} header.")
        client = find_client(presented)
        if client is None:
            raise errors.Unauthorized("Invalid API key.")
        g.api_client = client


api_key_auth = ApiKeyAuthenticator()
