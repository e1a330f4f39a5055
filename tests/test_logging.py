"""The log format, one line per event, escaping, redaction, and the shared rotating file."""

import logging
import os
import re
import subprocess
import sys

import pytest

from backend.log_setup import escape, redact_query
from tests.conftest import log_lines

FIELD = r"(?:(?! \| ).)+"
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) \| \S+::\d+"
    rf" \| {FIELD} \| {FIELD} \| {FIELD} \| (-|\d{{3}} [A-Z ]+) \| .*$"
)


def request_lines(app) -> list[str]:
    return [line for line in log_lines(app) if "log_setup.log_request::" in line]


def test_one_line_per_request_in_the_documented_format(logged_app):
    client = logged_app.test_client()
    headers = {logged_app.config["AUTH_HEADER"]: logged_app.config["AUTH_KEY"]}
    response = client.get("/api/v1/users?limit=2", headers=headers)

    [line] = request_lines(logged_app)
    assert LINE.match(line)
    fields = line.split(" | ")
    assert fields[1:7] == [
        "INFO",
        fields[2],
        "GET",
        "/api/v1/users",
        "limit=2",
        "200 OK",
    ]
    assert fields[2].startswith("backend.log_setup.log_request::")
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(
        rf"request_id={request_id} \d+\.\d ms client=default ip=127\.0\.0\.1", fields[7]
    )


def test_request_line_names_the_signed_in_user_and_their_address(logged_app):
    from tests.conftest import PASSWORD, bearer, sign_in

    client = logged_app.test_client()
    headers = {logged_app.config["AUTH_HEADER"]: logged_app.config["AUTH_KEY"]}
    body = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    user = client.post("/api/v1/users", json=body, headers=headers).json
    tokens = sign_in(client, "ada@example.com")
    client.get("/api/v1/me", headers=bearer(tokens), environ_base={"REMOTE_ADDR": "203.0.113.9"})
    client.get("/api/v1/me")

    *_, signed_in, anonymous = [line.split(" | ")[7] for line in request_lines(logged_app)]
    assert re.fullmatch(
        rf"request_id=\w+ \d+\.\d ms user={user['id']} ip=203\.0\.113\.9", signed_in
    )
    assert re.fullmatch(r"request_id=\w+ \d+\.\d ms ip=127\.0\.0\.1", anonymous)
    assert tokens["access_token"] not in "".join(log_lines(logged_app))


def test_fields_outside_a_request_are_dashes(logged_app):
    logging.getLogger("backend.jobs").warning("nightly clean-up done")

    [line] = [line for line in log_lines(logged_app) if "nightly" in line]
    assert LINE.match(line)
    assert line.split(" | ")[3:] == ["-", "-", "-", "-", "nightly clean-up done"]


def test_error_lines_say_where_in_the_code_they_came_from(logged_app):
    def broken() -> None:
        raise RuntimeError("boom")

    logged_app.add_url_rule("/broken", view_func=broken)
    logged_app.test_client().get("/broken")

    [line] = [line for line in log_lines(logged_app) if "Unhandled exception" in line]
    assert re.search(
        r" \| ERROR \| backend\.errors\.handle_unexpected_error::\d+ \| GET \| /broken ", line
    )


def test_secrets_never_reach_the_log(logged_app):
    client = logged_app.test_client()
    key = logged_app.config["AUTH_KEY"]
    client.get(
        "/api/v1/users?password=hunter22&api_key=k3y&Token=t0k&limit=5",
        headers={logged_app.config["AUTH_HEADER"]: key},
    )
    client.post(
        "/api/v1/users",
        json={"email": "a@example.com", "name": "A", "password": "my-password-1"},
        headers={logged_app.config["AUTH_HEADER"]: key},
    )
    client.get("/api/v1/users", headers={logged_app.config["AUTH_HEADER"]: "wrong-key-123"})

    text = "\n".join(log_lines(logged_app))
    for secret in ("hunter22", "k3y", "t0k", "my-password-1", key, "wrong-key-123"):
        assert secret not in text
    assert "password=***&api_key=***&Token=***&limit=5" in text


def test_request_data_cannot_forge_a_line(logged_app):
    client = logged_app.test_client()
    forged = "\n2020-01-01 00:00:00,000 | INFO | fake::1 | GET | / | - | 200 OK | forged"
    client.get("/nowhere%0A2020-01-01?q=" + forged.replace("\n", "%0A").replace(" ", "+"))
    client.get("/x | - | 200 OK | 1.0 ms")
    logging.getLogger("backend").warning("message with\nnewline\rand\x1bescape | 200 OK")

    lines = log_lines(logged_app)
    events = [line for line in lines if not line.startswith("    ")]
    assert all(LINE.match(line) for line in events)
    assert not any(line.startswith("2020-01-01") for line in lines)
    # Every event splits into exactly the eight documented fields.
    assert all(len(line.split(" | ")) == 8 for line in events)
    [faked] = [line.split(" | ") for line in events if "/x" in line]
    assert faked[4] == "/x \\| - \\| 200 OK \\| 1.0 ms" and faked[6].startswith("404")
    at = next(i for i, line in enumerate(lines) if line.endswith("| message with"))
    assert lines[at + 1] == "    newline\\rand\\x1bescape \\| 200 OK"


def test_python_warnings_are_logged_in_the_format_and_null_cache_warns_not():
    # In a process of its own: pytest records the warnings raised in tests.
    script = (
        "import warnings; from backend import create_app; from tests.conftest import PRODUCTION;"
        "create_app({**PRODUCTION, 'LOG_FILE': None,"
        " 'SQLALCHEMY_DATABASE_URI': 'sqlite://'});"
        "warnings.warn('a library complains', stacklevel=1)"
    )
    env = {**os.environ, "BACKEND_CONFIG_FILE": "/nonexistent/config.py"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )

    lines = result.stderr.splitlines()
    assert result.returncode == 0 and lines, result.stderr
    assert all(LINE.match(line) for line in lines if not line.startswith("    ")), lines
    # The only warning is this one: production's NullCache is deliberate, not warned about.
    [warning] = [line for line in lines if "Warning" in line]
    assert " | WARNING | py.warnings." in warning and "a library complains" in warning


def test_traceback_stays_indented_under_its_line(logged_app):
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("backend").exception("failed")

    lines = log_lines(logged_app)
    start = next(i for i, line in enumerate(lines) if line.endswith("| failed"))
    traceback = lines[start + 1 :]
    assert traceback[0] == "    Traceback (most recent call last):"
    assert traceback and all(line.startswith("    ") for line in traceback)
    assert all(LINE.match(line) for line in lines if not line.startswith(" "))


def test_building_many_apps_does_not_duplicate_handlers(make_app, tmp_path):
    make_app(LOG_FILE=str(tmp_path / "a.log"))
    app = make_app(LOG_FILE=str(tmp_path / "b.log"))
    logging.getLogger("backend").warning("once")

    assert [line for line in log_lines(app) if line.endswith("| once")] != []
    assert len([line for line in log_lines(app) if line.endswith("| once")]) == 1
    assert not (tmp_path / "a.log").exists()


def test_development_server_access_lines_are_dropped(logged_app):
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.info('127.0.0.1 - - [21/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 -')
    werkzeug.info(" * Running on http://127.0.0.1:5000")

    werkzeug.info(" * Debugger is active!\nPress CTRL+C to quit")

    lines = log_lines(logged_app)
    assert "GET / HTTP/1.1" not in "\n".join(lines)
    assert any(line.endswith(" * Running on http://127.0.0.1:5000") for line in lines)
    assert lines[-1] == "    Press CTRL+C to quit"


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("limit=2", "limit=2"),
        ("secret=x&offset=1", "secret=***&offset=1"),
        ("flag&passwd=x", "flag&passwd=***"),
        ("my%5Ftoken=x", "***=***"),
        ("p+w+d=hunter2", "***=***"),
        ("x=1&password%3Dhunter2", "x=***&***"),
        ("name=Ada&pw=hunter2", "name=***&pw=***"),
        ("limit=5&limit=6&LIMIT=7", "limit=5&limit=6&LIMIT=***"),
    ],
)
def test_redact_query(query, logged):
    assert redact_query(query) == logged


def test_escape_keeps_text_and_escapes_controls():
    assert escape("café | ok") == "café \\| ok"
    assert escape("a\tb\x00\u2028") == "a\\tb\\x00\\x2028"
    assert escape("\x1b[31mred\x1b[0m \x1b]0;title") == "red \\x1b]0;title"


def test_database_errors_log_no_values(logged_app, monkeypatch):
    from sqlalchemy import text

    from backend.extensions import db
    from backend.features.users import service

    def failing_statement() -> str:
        # Built here, so that the traceback's copy of this line does not hold the value.
        secret = "".join(["hunter", "2-param"])
        db.session.execute(text("SELECT no_such_function(:secret)"), {"secret": secret})
        return "unreachable"

    logged_app.add_url_rule("/failing", view_func=failing_statement)
    client = logged_app.test_client()
    assert client.get("/failing").status_code in (500, 503)

    # Two requests racing to register one email: the second meets the unique constraint.
    monkeypatch.setattr(service, "ensure_email_free", lambda email: None)
    headers = {logged_app.config["AUTH_HEADER"]: logged_app.config["AUTH_KEY"]}
    body = {"email": "racer@example.com", "name": "Racer", "password": "hunter2-password"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 201
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 409

    text_logged = "\n".join(log_lines(logged_app))
    assert "Integrity error: " in text_logged
    for secret in ("hunter2", "racer@example.com", "pbkdf2:", "scrypt:"):
        assert secret not in text_logged
