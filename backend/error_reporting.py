"""Unexpected errors reported to Sentry, with the request id and without secrets.

Reported: the exception of every 500 (backend/errors.py answers it, then sends Flask's
`got_request_exception`, which Sentry's Flask integration listens to), and any error
logged with its traceback (`logger.exception`), in a request, a job or a mail thread.
Not reported: what the app answers itself (4xx, 409, 503 while the database is down),
and errors logged without a traceback: the log has them.

What leaves, and what does not, is decided here rather than by Sentry's name-based
scrubbing, which misses the names clients invent (`current_password`, the API key's
header): a request is its method, URL, the query redacted as in the log, and the few
headers in `SHOWN_HEADERS`; never its body, cookies or credentials, nor any frame's
local variables, nor the command line. A database error shows its type, SQLSTATE and
statement with placeholders, as in the log: the driver's message can quote the values.
"""

from typing import Any

import sentry_sdk
from flask import Flask
from sentry_sdk.integrations.argv import ArgvIntegration
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.types import Event, Hint
from sentry_sdk.utils import BadDsn
from sqlalchemy.exc import DBAPIError

from backend.config_loading import ConfigError
from backend.log_setup import redact_query
from backend.request_ids import current_request_id

# Request headers an event shows; every other one (credentials, cookies) is left out.
SHOWN_HEADERS = ("Accept", "Content-Length", "Content-Type", "Host", "User-Agent")


def init_error_reporting(app: Flask) -> None:
    """Sentry's client belongs to the process: the last app built with a DSN sets it up
    (one app per process in production). Under gunicorn that is the master, before the
    fork; Sentry starts its sending thread again in each worker."""
    if not app.config["SENTRY_DSN"]:
        return
    request_id_header = app.config.get("REQUEST_ID_HEADER")  # None: ids are off
    shown = {name.lower() for name in (*SHOWN_HEADERS, request_id_header) if name}

    def before_send(event: Event, hint: Hint) -> Event | None:
        if "log_record" in hint and "exception" not in event:
            return None  # logged without a traceback: an answered error, in the log
        return _scrubbed(event, hint, shown)

    try:
        sentry_sdk.init(
            dsn=app.config["SENTRY_DSN"],
            release=app.config["SENTRY_RELEASE"] or app.config["API_VERSION"],
            environment=app.config["ENVIRONMENT"],
            # None turns tracing off entirely, where 0 would still build every transaction.
            traces_sample_rate=app.config["SENTRY_TRACES_SAMPLE_RATE"] or None,
            # Events are named after the route's rule, /api/v1/users/<id:user_id>.
            integrations=[FlaskIntegration(transaction_style="url")],
            # The command line can carry secrets: `gunicorn -e FLASK_SECRET_KEY=...`.
            disabled_integrations=[ArgvIntegration],
            include_local_variables=False,
            max_request_body_size="never",
            before_send=before_send,
            # Breadcrumbs would carry raw log messages and outgoing URLs, unredacted; the
            # event's request_id finds the request's lines in the log instead.
            before_breadcrumb=lambda crumb, hint: None,
            before_send_transaction=lambda event, hint: _scrubbed(event, hint, shown),
        )
    except BadDsn as error:  # its message names the problem, never the key
        raise ConfigError(f"Config error: SENTRY_DSN is not a Sentry DSN: {error}.") from None


def _scrubbed(event: Event, hint: Hint, shown: set[str]) -> Event:
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    if "request" in event:
        event["request"] = _shown_request(event["request"], shown)
    error = hint.get("exc_info", (None, None, None))[1]
    if isinstance(error, DBAPIError):
        described = (
            f"{type(error.orig).__name__} (SQLSTATE "
            f"{getattr(error.orig, 'pgcode', None) or '-'}) in: {error.statement}"
        )
        # The driver's own exception is chained to it, with the same message.
        for value in event.get("exception", {}).get("values", []):
            value["value"] = described
    return event


def _shown_request(request: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    headers = request.get("headers") or {}
    query = request.get("query_string")
    return {
        "method": request.get("method"),
        "url": request.get("url"),  # without the query
        "query_string": redact_query(query) if query else "",
        "headers": {name: value for name, value in headers.items() if name.lower() in shown},
    }
