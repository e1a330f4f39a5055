"""CORS for the API: browsers on ALLOWED_ORIGINS may call it (flask-cors)."""

from flask import Flask, Response, request

from backend.extensions import cors


def init_cors(app: Flask) -> None:
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": app.config["ALLOWED_ORIGINS"]}},
        allow_headers=[
            "Content-Type",
            "Authorization",
            app.config["AUTH_HEADER"],
            # .get: the request ids and client versions modules may have been removed.
            *_configured(
                app.config.get("REQUEST_ID_HEADER"), app.config.get("CLIENT_VERSION_HEADER")
            ),
        ],
        # What a browser's script may read: where a new resource is, when to retry, the
        # rate limit left, the request's id to quote, and a version's deprecation.
        expose_headers=[
            "Location",
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            *_configured(app.config.get("REQUEST_ID_HEADER")),
            "Deprecation",
            "Sunset",
        ],
        # Only requests from a browser (with an Origin) get CORS headers.
        always_send=False,
    )
    if app.config["ALLOWED_ORIGINS"]:
        app.after_request(vary_on_origin)


def _configured(*headers: str | None) -> list[str]:
    return [header for header in headers if header]


def vary_on_origin(response: Response) -> Response:
    """Caches must not hand an answer made without CORS headers to a browser's request."""
    if request.path.startswith("/api/"):
        response.vary.add("Origin")
    return response
