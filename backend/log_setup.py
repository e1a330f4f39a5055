"""Logging: one line per event, to the console and to a file every worker shares.

    datetime | level | location_in_code | method | path | query_params | status | description

The format, what is escaped and redacted, and why: README, "Logging".
"""

import logging
import re
import sys
import time
from pathlib import Path

from flask import Flask, Response, g, has_request_context, request

from backend import settings
from backend.request_ids import current_request_id
from backend.shared_log_file import SharedRotatingFileHandler

logger = logging.getLogger(__name__)

LOG_FORMAT = (
    "%(asctime)s | %(levelname)s | %(name)s.%(funcName)s::%(lineno)d"
    " | %(method)s | %(path)s | %(query)s | %(status)s | %(message)s"
)
EMPTY = "-"
REDACTED = "***"
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
# Terminal colour codes, which the development server puts in its messages.
COLOUR_CODES = re.compile(r"\x1b\[[0-9;]*m")
ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029|]")
READABLE_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "|": "\\|"}

# Logging is set up once per process, and so is this: gunicorn's own messages use it too.
query_values_shown = frozenset(settings.LOG_QUERY_VALUES)


def configure_logging(app: Flask) -> None:
    """Replace the handlers a previous app installed, so tests can build many apps."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h.formatter, OneLineFormatter)]:
        root.removeHandler(handler)
        handler.close()

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if app.config["LOG_FILE"]:
        handlers.append(_file_handler(app))
    for handler in handlers:
        handler.setFormatter(OneLineFormatter(LOG_FORMAT))
        handler.addFilter(RequestFields())
        root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    logging.captureWarnings(True)
    global query_values_shown
    query_values_shown = frozenset(app.config["LOG_QUERY_VALUES"])

    # The request line below replaces the development server's access log.
    logging.getLogger("werkzeug").addFilter(_drop_access_lines)
    app.before_request(_start_timer)
    app.after_request(log_request)


def _file_handler(app: Flask) -> logging.Handler:
    # A relative path is taken from the project root, wherever the process starts.
    path = Path(app.root_path).parent / app.config["LOG_FILE"]
    path.parent.mkdir(parents=True, exist_ok=True)
    return SharedRotatingFileHandler(
        str(path), app.config["LOG_MAX_BYTES"], app.config["LOG_BACKUP_COUNT"]
    )


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def log_request(response: Response) -> Response:
    """The request's line: how long it took, who called (g.caller, set by backend/auth.py)
    and from which address."""
    elapsed_ms = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
    caller = g.get("caller")
    who = f"{caller} " if caller is not None else ""
    logger.info(
        "%.1f ms %sip=%s",
        elapsed_ms,
        who,
        request.remote_addr or EMPTY,
        extra={"status": escape(response.status)},
    )
    return response


def _drop_access_lines(record: logging.LogRecord) -> bool:
    # The development server's access lines look like '127.0.0.1 - - [date] "GET / HTTP/1.1" 200 -'.
    return " - - [" not in record.getMessage()


def escape(text: str) -> str:
    return ESCAPED.sub(
        lambda match: READABLE_ESCAPES.get(match.group(), f"\\x{ord(match.group()):02x}"),
        COLOUR_CODES.sub("", text),
    )


def redact_query(query_string: str) -> str:
    pairs = []
    for pair in query_string.split("&"):
        name, separator, value = pair.partition("=")
        if not PLAIN_NAME.fullmatch(name):
            name = REDACTED
        if separator and name not in query_values_shown:
            value = REDACTED
        pairs.append(f"{name}{separator}{value}")
    return "&".join(pairs)


class RequestFields(logging.Filter):
    """Adds the request's method, path and query to every record, or "-" outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "query"):
            return True  # the other handler's filter has filled them in already
        if has_request_context():
            query = request.query_string.decode("utf-8", "replace")
            record.method = escape(request.method)
            record.path = escape(request.path)
            record.query = escape(redact_query(query)) if query else EMPTY
        else:
            record.method = record.path = record.query = EMPTY
        if not hasattr(record, "status"):
            record.status = EMPTY
        record.request_id = current_request_id()
        return True


class OneLineFormatter(logging.Formatter):
    """Escapes the message onto its line and indents any traceback beneath it."""

    def format(self, record: logging.LogRecord) -> str:
        # Every handler formats the record; the line is the same, so make it once.
        made = record.__dict__.get("_one_line")
        if made is not None and made[0] == self._fmt:
            return made[1]
        first_line, *more_lines = record.getMessage().rstrip("\n").split("\n")
        record.message = escape(first_line)
        request_id = getattr(record, "request_id", None)
        if request_id:  # well-formed (backend/request_ids.py): nothing to escape
            record.message = f"request_id={request_id} {record.message}"

        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if more_lines:
            line += "\n" + _indent("\n".join(more_lines))
        # Another handler may have formatted (and cached) the traceback already.
        if record.exc_text:
            line += "\n" + _indent(record.exc_text)
        elif record.exc_info:
            line += "\n" + _indent(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + _indent(self.formatStack(record.stack_info))
        record._one_line = (self._fmt, line)
        return line


def _indent(text: str) -> str:
    return "\n".join("    " + escape(line) for line in text.rstrip("\n").split("\n"))
