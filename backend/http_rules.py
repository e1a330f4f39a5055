"""What every request must be before a handler sees it, and what every answer is:
storable strings, bounded JSON, readable bodies, no redirects (README, "Hostile input
and racing requests").
"""

import re
from typing import Any

from flask import Flask, Request, Response, request
from flask_rebar import errors, messages
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

MAX_JSON_DEPTH = 32
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_PROBLEM = "Contains a NUL character or a lone surrogate, which cannot be stored."


def init_http_rules(app: Flask) -> None:
    """Call before any route is added: the URL map applies its options to new rules."""
    app.request_class = CheckedRequest
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.before_request(reject_unstorable_query)
    app.after_request(no_content_type_without_content)


class CheckedRequest(Request):
    def get_data(self, *args: Any, **kwargs: Any) -> Any:
        try:
            data = super().get_data(*args, **kwargs)
        except HTTPException:
            raise
        except Exception as error:
            # The server's body reader raises its own types (gunicorn's ParseException).
            raise BadRequest("The request body could not be read.") from error
        limit = self.max_content_length
        # A chunked body that filled the limit is over it if anything is left.
        filled = self.content_length is None and limit is not None and len(data) >= limit
        if filled and self.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
        return data

    def get_json(self, *args: Any, **kwargs: Any) -> Any:
        try:
            body = super().get_json(*args, **kwargs)
        except RecursionError:
            raise _too_deep() from None
        problems = _unstorable_strings(body)
        if problems:
            raise errors.BadRequest(messages.body_validation_failed, {"errors": problems})
        return body


def _too_deep() -> errors.BadRequest:
    return errors.BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")


def _unstorable_strings(body: Any) -> dict[str, Any]:
    """Each unstorable string by where it is, in marshmallow's error shape."""
    problems: dict[str, Any] = {}
    if not isinstance(body, dict | list):
        return problems  # a bare value: rebar refuses it as not an object
    stack: list[tuple[Any, tuple[str, ...]]] = [(body, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_JSON_DEPTH:
            raise _too_deep()
        entries = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in entries:
            name = str(key)
            if UNSTORABLE.search(name) or (isinstance(item, str) and UNSTORABLE.search(item)):
                *parents, last = (*path, UNSTORABLE.sub("?", name))
                found = problems
                for parent in parents:
                    found = found.setdefault(parent, {})
                found[last] = UNSTORABLE_PROBLEM
            elif isinstance(item, dict | list):
                stack.append((item, (*path, name)))
    return problems


def reject_unstorable_query() -> None:
    if b"%00" not in request.query_string:
        return
    bad = [name for name, value in request.args.items(multi=True) if "\x00" in name + value]
    if bad:
        problems = {UNSTORABLE.sub("?", name): UNSTORABLE_PROBLEM for name in bad}
        raise errors.BadRequest(messages.query_string_validation_failed, {"errors": problems})


def no_content_type_without_content(response: Response) -> Response:
    if response.direct_passthrough or response.is_streamed or response.get_data():
        return response
    del response.headers["Content-Type"]
    if request.method == "OPTIONS" and response.status_code == 200:
        response.status_code = 204
    return response
