"""Flask's signed-cookie session, verified only for requests that send the cookie."""

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessionOnDemand(SecureCookieSessionInterface):
    """API clients authenticate with keys and send no session cookie: for them there is
    nothing to verify, so the signing serializer is not built (a fifth of a cache hit's
    CPU). A handler that writes to `flask.session` still gets its signed cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
