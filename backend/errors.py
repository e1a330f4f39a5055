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
    sqlalchemy.exc.OperationalError,       503: the database is unreachable; the next request
      InterfaceError                        reconnects by itself
    any other Exception                    500 {"message": "Internal Server Error"}; the
                                            traceback goes to the log only

Rebar registers handlers for its own errors and for 400, 404 and 405; this module adds the rest.
"""

import logging

from flask import Flask, Response, jsonify
from marshmallow import INCLUDE, Schema, fields
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from backend.extensions import db

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is down.
RETRY_AFTER_SECONDS = 5


class ErrorSchema(Schema):
    """An error: what went wrong and, for invalid input, the problem with each field."""

    class Meta:
        # Errors may carry extra keys, such as "reason" or "missing_scope".
        unknown = INCLUDE

    message = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "For invalid input: field name to problem."})


# Every API endpoint can answer these: malformed input (400), no or a wrong key (401), a
# key without the scope (403), and the database unreachable (503); and, from gunicorn
# before the app sees the request (gunicorn.conf.py), a request line or headers too
# large (414, 431).
COMMON_ERRORS = (400, 401, 403, 414, 431, 503)


def with_errors(responses: dict, *statuses: int) -> dict:
    """An endpoint's success responses plus the errors it can answer, for the document."""
    return {**responses, **dict.fromkeys((*COMMON_ERRORS, *statuses), ErrorSchema())}


def register_error_handlers(app: Flask) -> None:
    # Registered after rebar's, so these replace its handlers for 400, 404, 405 (which
    # drop headers such as Allow) and its generic 500 handler.
    for status in (400, 404, 405):
        app.register_error_handler(status, handle_http_exception)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)


def json_error(message: str, status: int, **extra: object) -> Response:
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


def handle_integrity_error(error: IntegrityError) -> Response:
    db.session.rollback()
    logger.warning("Integrity error: %s", error.orig)
    return json_error("The request conflicts with data already stored.", 409)


def handle_database_unavailable(error: OperationalError | InterfaceError) -> Response:
    db.session.rollback()
    # One line, not a traceback per request, while the database is down.
    first_line = (str(error.orig).strip().splitlines() or [repr(error.orig)])[0]
    logger.error("Database unavailable: %s", first_line)
    response = json_error("The database is unavailable; try again shortly.", 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def handle_unexpected_error(error: Exception) -> Response:
    logger.exception("Unhandled exception")
    return json_error("Internal Server Error", 500)
