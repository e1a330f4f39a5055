"""The log format, one line per event, escaping, redaction, and the shared rotating file."""

import logging
import re

import pytest

from backend.log_setup import escape, redact_query

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) \| \S+::\d+"
    r" \| \S+ \| \S+ \| \S+ \| (-|\d{3} [A-Z ]+) \| .*$"
)


@pytest.fixture
def logged_app(make_app, tmp_path):
    return make_app(LOG_FILE=str(tmp_path / "app.log"))


def log_lines(app) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    with open(app.config["LOG_FILE"], encoding="utf-8") as log_file:
        return log_file.read().splitlines()


def request_lines(app) -> list[str]:
    return [line for line in log_lines(app) if "log_setup.log_request::" in line]


def test_one_line_per_request_in_the_documented_format(logged_app):
    client = logged_app.test_client()
    headers = {logged_app.config["AUTH_HEADER"]: logged_app.config["AUTH_KEY"]}
    client.get("/api/v1/users?limit=2", headers=headers)

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
    assert re.fullmatch(r"\d+\.\d ms", fields[7])


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
    logging.getLogger("backend").warning("message with\nnewline\rand\x1bescape")

    lines = log_lines(logged_app)
    assert all(LINE.match(line) for line in lines)
    assert not any(line.startswith("2020-01-01") for line in lines)
    assert any(line.endswith("message with\\nnewline\\rand\\x1bescape") for line in lines)


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

    text = "\n".join(log_lines(logged_app))
    assert "GET / HTTP/1.1" not in text
    assert "Running on http://127.0.0.1:5000" in text


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("limit=2", "limit=2"),
        ("secret=x&offset=1", "secret=***&offset=1"),
        ("flag&passwd=x", "flag&passwd=***"),
        ("my%5Ftoken=x", "my%5Ftoken=***"),
    ],
)
def test_redact_query(query, logged):
    assert redact_query(query) == logged


def test_escape_keeps_text_and_escapes_controls():
    assert escape("café | ok") == "café | ok"
    assert escape("a\tb\x00\u2028") == "a\\tb\\x00\\x2028"
    assert escape("\x1b[31mred\x1b[0m \x1b]0;title") == "red \\x1b]0;title"
