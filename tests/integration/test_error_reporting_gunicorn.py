"""Sentry under gunicorn: set up in the master before the fork, sent by each worker."""

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

import backend
from tests.integration.servers import request
from tests.test_error_reporting import SentryInbox

pytestmark = pytest.mark.integration

FAILING_APP = "tests.integration.test_error_reporting_gunicorn:create_failing_app()"


def create_failing_app() -> Flask:
    """The app with a route that fails, naming the process it failed in."""
    app = backend.create_app()

    @app.post("/api/v1/failing")
    def fail() -> dict:
        raise RuntimeError(f"Failed in process {os.getpid()}")

    return app


def test_sentry_event_received_locally_without_secrets(database_url, start_gunicorn):
    inbox = SentryInbox()
    try:
        server = start_gunicorn(
            workers=3, app=FAILING_APP, DATABASE_URL=database_url, FLASK_SENTRY_DSN=inbox.dsn
        )
        secret = f"secret-{uuid.uuid4().hex}"

        def fail(_: int):
            body = {"password": secret, "refresh_token": secret}
            url = f"{server.url}/api/v1/failing?limit=5&token={secret}"
            return request(url, "POST", body, token=secret)

        with ThreadPoolExecutor(max_workers=6) as pool:
            replies = list(pool.map(fail, range(12)))
        assert {reply.status for reply in replies} == {500}
        inbox.wait_for_events(len(replies))
        server.stop()  # a stopping worker sends whatever it still holds: nothing more comes

        events = inbox.events()
        request_ids = sorted(reply.body["request_id"] for reply in replies)
        assert sorted(event["tags"]["request_id"] for event in events) == request_ids
        assert {event["transaction"] for event in events} == {"/api/v1/failing"}
        assert {event["release"] for event in events} == {"1.0.0"}
        assert {event["request"]["query_string"] for event in events} == {"limit=5&token=***"}
        senders = {event["exception"]["values"][0]["value"].split()[-1] for event in events}
        assert str(server.process.pid) not in senders  # the workers sent them, not the master
        assert secret not in inbox.raw().decode()
    finally:
        inbox.close()
