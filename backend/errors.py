"""Every error leaves as one JSON shape with the right status, never HTML or a traceback.

The shape: {"message": "what went wrong", ...extra keys}, for example
    {"message": "JSON body parameters are invalid.", "errors": {"email": "Not a valid email address."}}
    {"message": "You can't do that!", "reason": "missing credentials"}

Who answers what:
    flask_rebar.errors.HttpJsonError       raised by handlers and by rebar's validation;
      BadRequest 400, Unauthorized 401,     answered by rebar with the message and any
      Forbidden 403, NotFound 404,          additional_data given, e.g.
      Conflict 409, ...                     Forbidden("You can't do that!", {"reason": "..."})
    werkzeug.exceptions.HTTPException      routing and protocol errors: unknown route 404,
                                            wrong method 405, body too large 413, ...
    sqlalchemy.exc.IntegrityError          409: a write broke a constraint, e.g. two requests
                                            racing to register one email
    sqlalchemy.orm.exc.StaleDataError      404: the row was deleted by a request that raced
                                            this one (an UPDATE found no row to change)
    sqlalchemy.exc.OperationalError,       503: the database is unreachable; the next request
      InterfaceError                        reconnects by itself. A deadlock or serialization
                                            failure between racing writes is a 409 instead
    any other Exception                    500 {"message": "Internal Server Error"}; the
                                            traceback goes to the log only

Rebar registers handlers for its own errors and for 400, 404 and 405; this module replaces
them and adds the rest. Error bodies stay small whatever the client sent: at most
`MAX_FIELD_ERRORS` field errors per level, each name and message cut at `MAX_ERROR_TEXT`.
Log lines name the constraint or the first line of a database error, never the values
(PostgreSQL's DETAIL repeats them, and SQLAlchemy's parameters are hidden).
"""

import logging
import traceback
from typing import Any

from flask import Flask, Response, current_app, got_request_exception, jsonify
from flask_rebar.errors import HttpJsonError
from flask_rebar.messages import ErrorMessage
from marshmallow import INCLUDE, Schema, fields
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from backend.extensions import db
from backend.request_ids import current_request_id

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is down.
RETRY_AFTER_SECONDS = 5
MAX_FIELD_ERRORS = 20
MAX_ERROR_TEXT = 200
# PostgreSQL's codes for a deadlock and a serialization failure: retrying succeeds.
RACE_CODES = ("40P01", "40001")


class ErrorSchema(Schema):
    """An error: what went wrong and, for invalid input, the problem with each field."""

    class Meta:
        # Errors may carry extra keys, such as "reason" or "missing_scope".
        unknown = INCLUDE

    message = fields.String(required=True)
    request_id = fields.String(
        metadata={"description": "The request's id, as in X-Request-ID and the log."}
    )
    errors = fields.Dict(metadata={"description": "For invalid input: field name to problem."})


# Every API endpoint can answer these: malformed input (400), no or a wrong key (401), a
# key without the scope (403), a client version no longer supported (426), too many
# requests (429), and the database unreachable (503); and, from gunicorn
# (gunicorn.conf.py), a request sent too slowly (408), a request line or headers too
# large (414, 431), and a request still running at the worker timeout (504).
COMMON_ERRORS = (400, 401, 403, 408, 414, 426, 429, 431, 503, 504)


def with_errors(responses: dict, *statuses: int) -> dict:
    """An endpoint's success responses plus the errors it can answer, for the document."""
    return {**responses, **dict.fromkeys((*COMMON_ERRORS, *statuses), ErrorSchema())}


def register_error_handlers(app: Flask) -> None:
    # Registered after rebar's, so these replace its handlers for 400, 404, 405 (which
    # drop headers such as Allow) and its generic 500 handler.
    for status in (400, 404, 405):
        app.register_error_handler(status, handle_http_exception)
    app.register_error_handler(HttpJsonError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(StaleDataError, handle_row_gone)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)


def json_error(message: str, status: int, /, **extra: object) -> Response:
    request_id = current_request_id()
    if request_id is not None:
        extra["request_id"] = request_id
    response = jsonify(message=message, **extra)
    response.status_code = status
    return response


def handle_http_exception(error: HTTPException) -> Response:
    response = json_error(error.description or error.name, error.code or 500)
    # Keep what the error says besides its HTML body, e.g. Allow on a 405.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_api_error(error: HttpJsonError) -> Response:
    message = error.error_message
    if isinstance(message, ErrorMessage):
        message = message.message
    extra = dict(error.additional_data or {})
    if isinstance(extra.get("errors"), dict):
        extra["errors"] = _capped(extra["errors"])
    return json_error(message, error.http_status_code, **extra)


def _capped(problems: dict) -> dict[str, Any]:
    """The client chose the field names (unknown fields are echoed), and how many."""
    capped: dict[str, Any] = {}
    for name, problem in list(problems.items())[:MAX_FIELD_ERRORS]:
        if isinstance(problem, dict):
            problem = _capped(problem)
        elif isinstance(problem, str):
            problem = problem[:MAX_ERROR_TEXT]
        capped[str(name)[:MAX_ERROR_TEXT]] = problem
    if len(problems) > MAX_FIELD_ERRORS:
        capped["..."] = f"{len(problems) - MAX_FIELD_ERRORS} more errors not shown."
    return capped


def handle_integrity_error(error: IntegrityError) -> Response:
    db.session.rollback()
    logger.warning("Integrity error: %s", database_problem(error))
    return json_error("The request conflicts with data already stored.", 409)


def handle_row_gone(error: StaleDataError) -> Response:
    db.session.rollback()
    return json_error("Not found: it was deleted while this request was handled.", 404)


def handle_database_unavailable(error: OperationalError | InterfaceError) -> Response:
    db.session.rollback()
    if getattr(error.orig, "pgcode", None) in RACE_CODES:
        logger.warning("Write conflict: %s", database_problem(error))
        response = json_error("The request conflicted with another one; try again.", 409)
        response.headers["Retry-After"] = "1"
        return response
    # One line, not a traceback per request, while the database is down.
    logger.error("Database unavailable: %s", database_problem(error))
    response = json_error("The database is unavailable; try again shortly.", 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def database_problem(error: DBAPIError) -> str:
    """What went wrong without the values: PostgreSQL's DETAIL line would repeat them."""
    diagnostics = getattr(error.orig, "diag", None)
    primary = getattr(diagnostics, "message_primary", None)
    if primary:
        return primary
    return (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]


def handle_unexpected_error(error: Exception) -> Response:
    # Flask sends got_request_exception only for errors no handler takes; this one takes
    # them all, so it sends it: error reporting (backend/error_reporting.py) listens.
    got_request_exception.send(current_app._get_current_object(), exception=error)  # type: ignore[attr-defined]
    if isinstance(error, DBAPIError):
        db.session.rollback()
        # The driver's message can quote what was sent (PostgreSQL's "LINE 1: ..." shows
        # the statement with its values): the error's type, code and statement instead.
        logger.error(
            "Unhandled database error %s (SQLSTATE %s) in: %s\n%s",
            type(error.orig).__name__,
            getattr(error.orig, "pgcode", None) or "-",
            error.statement,
            "".join(traceback.format_tb(error.__traceback__)),
        )
    else:
        logger.exception("Unhandled exception")
    return json_error("Internal Server Error", 500)
