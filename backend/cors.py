"""CORS for the API: browsers on ALLOWED_ORIGINS may call it (flask-cors)."""

from flask import Flask, Response, request

from backend.extensions import cors


def init_cors(app: Flask) -> None:
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": app.config["ALLOWED_ORIGINS"]}},
        allow_headers=["Content-Type", "Authorization", app.config["AUTH_HEADER"]],
        expose_headers=["Location", "Retry-After"],
        # Only requests from a browser (with an Origin) get CORS headers.
        always_send=False,
    )
    if app.config["ALLOWED_ORIGINS"]:
        app.after_request(vary_on_origin)


def vary_on_origin(response: Response) -> Response:
    """Caches must not hand an answer made without CORS headers to a browser's request."""
    if request.path.startswith("/api/"):
        response.vary.add("Origin")
    return response
