"""One id per request, so that one failure can be followed through every line it caused.

A well-formed `X-Request-ID` from the client or the proxy in front is kept, so the id
matches theirs; anything else gets a new one. The id is returned in the same header,
prefixes every log line written while the request is handled (backend/log_setup.py),
is part of every JSON error body (backend/errors.py), and travels into work the
request hands to another thread (`carry`, used by backend/mail).
"""

import contextvars
import re
import uuid
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, Response, request

# What a client may choose: short, and nothing that could break a log line or header.
WELL_FORMED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

P = ParamSpec("P")
R = TypeVar("R")


def init_request_ids(app: Flask) -> None:
    header = app.config["REQUEST_ID_HEADER"]
    if not header:
        return  # turned off: no ids, in the log or anywhere else
    environ_key = "HTTP_" + header.upper().replace("-", "_")

    def take_request_id() -> None:
        incoming = request.environ.get(environ_key, "")
        _request_id.set(incoming if WELL_FORMED.fullmatch(incoming) else uuid.uuid4().hex)

    def return_request_id(response: Response) -> Response:
        request_id = _request_id.get()
        if request_id:
            response.headers[header] = request_id
        return response

    def forget_request_id(_error: BaseException | None) -> None:
        # gunicorn's threads serve request after request: no id may outlive its request.
        _request_id.set(None)

    app.before_request(take_request_id)
    app.after_request(return_request_id)
    app.teardown_request(forget_request_id)


def current_request_id() -> str | None:
    """The id of the request being handled, or of the one that started this work."""
    return _request_id.get()


def carry(work: Callable[P, R]) -> Callable[P, R]:
    """`work`, to run in another thread under the id of the request that hands it over."""
    request_id = _request_id.get()
    if request_id is None:
        return work

    def under_request_id(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _request_id.set(request_id)
        try:
            return work(*args, **kwargs)
        finally:
            _request_id.reset(token)

    return under_request_id
