"""Sentry: what reaches it, once, and what never does; received by a local HTTP endpoint."""

import gzip
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from flask import Flask, request
from sqlalchemy.exc import DBAPIError

from backend.config_loading import ConfigError
from tests.conftest import AUTH_KEY


class SentryInbox:
    """A local stand-in for Sentry's ingestion endpoint, keeping every envelope sent."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        inbox = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                inbox.envelopes.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def events(self, kind: str = "event") -> list[dict]:
        return [
            json.loads(payload)
            for envelope in self.envelopes
            for header, payload in envelope_items(envelope)
            if header["type"] == kind
        ]

    def wait_for_events(self, count: int, timeout: float = 20) -> list[dict]:
        """For other processes' events, which no flush here can hurry."""
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()

    def raw(self) -> bytes:
        return b"\n".join(self.envelopes)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def envelope_items(envelope: bytes) -> list[tuple[dict, bytes]]:
    """An envelope is a header line, then per item a header line and its payload."""
    _, _, rest = envelope.partition(b"\n")
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


@pytest.fixture
def inbox():
    """Sentry's client belongs to the process: each test leaves none behind."""
    receiver = SentryInbox()
    yield receiver
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    receiver.close()


def sent_events(inbox: SentryInbox) -> list[dict]:
    sentry_sdk.flush()
    return inbox.events()


def add_failing_route(app: Flask) -> None:
    def fail(number: int) -> dict:
        body = request.get_json(silent=True) or {}
        password = body.get("password")  # a local variable an event must not carry
        raise RuntimeError(f"Could not handle item {number} ({password is not None})")

    app.add_url_rule("/api/v1/failing/<int:number>", view_func=fail, methods=["POST"])


def secrets_sent(app: Flask, client) -> tuple[list[str], object]:
    """Posts to the failing route with a secret in every place a client can put one."""
    secrets = {name: f"secret-{name}-{uuid.uuid4().hex}" for name in range(8)}
    response = client.post(
        f"/api/v1/failing/7?limit=5&token={secrets[0]}",
        json={
            "password": secrets[1],
            "current_password": secrets[2],
            "refresh_token": secrets[3],
            "note": secrets[4],
        },
        headers={
            app.config["AUTH_HEADER"]: AUTH_KEY,
            "Authorization": f"Bearer {secrets[5]}",
            "Cookie": f"session={secrets[6]}",
            "X-Custom-Credential": secrets[7],
        },
    )
    return [*secrets.values(), AUTH_KEY], response


def test_unhandled_exception_is_reported_once_with_request_id_route_and_release(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn)
    add_failing_route(app)
    _, response = secrets_sent(app, app.test_client())

    assert response.status_code == 500
    assert response.json["message"] == "Internal Server Error"
    [event] = sent_events(inbox)
    assert event["tags"]["request_id"] == response.json["request_id"]
    assert event["transaction"] == "/api/v1/failing/<int:number>"
    assert event["release"] == app.config["API_VERSION"]
    assert event["environment"] == "testing"
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == (
        "RuntimeError",
        "Could not handle item 7 (True)",
    )


def test_an_event_carries_no_secret_from_the_request(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn)
    add_failing_route(app)
    secrets, response = secrets_sent(app, app.test_client())

    [event] = sent_events(inbox)
    assert response.status_code == 500
    assert event["request"]["method"] == "POST"
    assert event["request"]["url"] == "http://localhost/api/v1/failing/7"
    assert event["request"]["query_string"] == "limit=5&token=***"  # LOG_QUERY_VALUES' rule
    assert set(event["request"]["headers"]) == {
        "Host",
        "User-Agent",
        "Content-Type",
        "Content-Length",
    }
    assert "data" not in event["request"] and "cookies" not in event["request"]
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames and not any("vars" in frame for frame in frames)
    raw = inbox.raw().decode()
    assert [secret for secret in secrets if secret in raw] == []


def test_sentry_release_setting_names_the_release(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn, SENTRY_RELEASE="2026.11.30-abc123")
    add_failing_route(app)
    app.test_client().post("/api/v1/failing/1")

    [event] = sent_events(inbox)
    assert event["release"] == "2026.11.30-abc123"


def test_answered_errors_are_not_reported(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn)
    add_failing_route(app)
    client = app.test_client()
    headers = {app.config["AUTH_HEADER"]: AUTH_KEY}

    assert client.get("/api/v1/nowhere", headers=headers).status_code == 404
    assert client.get("/api/v1/users").status_code == 401
    assert client.post("/api/v1/users", json={"email": 1}, headers=headers).status_code == 400
    assert client.post("/api/v1/users", data="{", headers=headers).status_code == 400
    # The only event is this one, so the endpoint was listening all along.
    failed = client.post("/api/v1/failing/2")

    [event] = sent_events(inbox)
    assert event["tags"]["request_id"] == failed.json["request_id"]


def test_database_outage_answered_503_is_not_reported(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn, SQLALCHEMY_DATABASE_URI="sqlite:////nonexistent/x.db")
    add_failing_route(app)
    client = app.test_client()

    response = client.get("/api/v1/users", headers={app.config["AUTH_HEADER"]: AUTH_KEY})
    failed = client.post("/api/v1/failing/3")

    assert response.status_code == 503
    [event] = sent_events(inbox)
    assert event["tags"]["request_id"] == failed.json["request_id"]


def test_database_error_is_reported_without_the_values_sent(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn)
    secret = f"secret-{uuid.uuid4().hex}"

    def failing_query() -> dict:
        # What PostgreSQL's message does: quote the statement with its values.
        driver_error = Exception(f'invalid input\nLINE 1: UPDATE users SET name = "{secret}"')
        raise DBAPIError("UPDATE users SET name = %(name)s", {"name": secret}, driver_error)

    app.add_url_rule("/api/v1/failing-query", view_func=failing_query, methods=["POST"])
    response = app.test_client().post("/api/v1/failing-query")

    assert response.status_code == 500
    [event] = sent_events(inbox)
    assert event["exception"]["values"][-1]["value"] == (
        "Exception (SQLSTATE -) in: UPDATE users SET name = %(name)s"
    )
    assert secret not in inbox.raw().decode()


def test_traced_requests_carry_no_secret_either(make_app, inbox):
    app = make_app(SENTRY_DSN=inbox.dsn, SENTRY_TRACES_SAMPLE_RATE=1.0)
    secret = f"secret-{uuid.uuid4().hex}"
    headers = {app.config["AUTH_HEADER"]: AUTH_KEY, "Cookie": f"session={secret}"}

    response = app.test_client().get(f"/api/v1/users?limit=5&token={secret}", headers=headers)
    sentry_sdk.flush()

    assert response.status_code == 200
    [transaction] = inbox.events("transaction")
    assert transaction["transaction"] == "/api/v1/users"
    assert transaction["request"]["query_string"] == "limit=5&token=***"
    raw = inbox.raw().decode()
    assert secret not in raw and AUTH_KEY not in raw


def test_without_a_dsn_nothing_is_set_up(make_app):
    app = make_app()
    add_failing_route(app)

    assert app.test_client().post("/api/v1/failing/4").status_code == 500
    assert not sentry_sdk.get_client().is_active()


def test_malformed_dsn_is_refused_without_showing_it(make_app):
    with pytest.raises(ConfigError) as refused:
        make_app(SENTRY_DSN="ftp://the-secret-key@sentry.example.com/1")

    assert str(refused.value) == (
        "Config error: SENTRY_DSN is not a Sentry DSN: Unsupported scheme 'ftp'."
    )
