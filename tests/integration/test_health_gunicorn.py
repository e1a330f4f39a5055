"""The health endpoints and security headers under gunicorn with several workers."""

import socket
import time
from urllib.request import Request, urlopen

import pytest

from tests.integration.servers import TEST_REDIS_URL, request

pytestmark = pytest.mark.integration


def ready_within(url: str, timeout: float = 15) -> dict:
    """The body of the first 200 from /health/ready: workers elect a leader as they boot."""
    deadline = time.monotonic() + timeout
    while True:
        reply = request(url + "/health/ready", key=None)
        if reply.status == 200 or time.monotonic() > deadline:
            assert reply.status == 200, reply.body
            return reply.body
        time.sleep(0.2)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers, like a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def test_every_worker_is_live_and_ready_with_security_headers(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url, FLASK_TRUSTED_PROXIES="1")

    assert ready_within(server.url)["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "scheduler": "ok",
        "redis": "ok" if TEST_REDIS_URL else "not configured",
    }
    # On fresh connections, so that every worker answers some.
    for path in ["/health/live", "/health/ready", "/health"] * 6:
        reply = request(server.url + path, key=None)
        assert reply.status == 200, (path, reply.body)
        assert reply.body["status"] == "ok"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert (
            reply.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        )
        assert "Strict-Transport-Security" not in reply.headers  # plain HTTP
    # HTTPS ended at the proxy in front, which says so.
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with urlopen(Request(server.url + "/health/live", headers=headers), timeout=15) as reply:
        assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_ready_names_a_database_without_migrations(tmp_path, start_gunicorn):
    server = start_gunicorn(workers=2, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")

    live = request(server.url + "/health/live", key=None)
    ready = request(server.url + "/health/ready", key=None)

    assert live.status == 200
    assert ready.status == 503
    assert ready.headers["Retry-After"] == "5"
    assert ready.body["message"] == "Not ready: migrations."
    assert ready.body["checks"]["migrations"].endswith("run `flask db upgrade`")
    assert ready.body["request_id"] == ready.headers["X-Request-ID"]


def test_ready_answers_while_database_and_redis_hang(silent_port, start_gunicorn):
    server = start_gunicorn(
        workers=2,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{silent_port}/x",
        FLASK_DATABASE_CONNECT_TIMEOUT="1",
        FLASK_CACHE_TYPE="RedisCache",
        FLASK_CACHE_REDIS_URL=f"redis://127.0.0.1:{silent_port}/0",
    )

    live = request(server.url + "/health/live", key=None)
    # Answered, not left to the worker timeout's 504 (or to the client's own timeout).
    ready = request(server.url + "/health/ready", key=None)

    assert live.status == 200
    assert ready.status == 503
    assert ready.body["checks"] == {
        "database": "unreachable",
        "migrations": "not checked",
        "scheduler": "not checked",
        "redis": "unreachable",
    }


def test_ready_needs_an_instance_running_the_jobs_somewhere(database_url, start_gunicorn):
    web = start_gunicorn(workers=2, DATABASE_URL=database_url, FLASK_SCHEDULER_ENABLED="false")

    reply = request(web.url + "/health/ready", key=None)
    assert reply.status == 503
    assert reply.body["message"] == "Not ready: scheduler."

    # Another instance that runs the jobs makes this one ready too.
    start_gunicorn(workers=1, DATABASE_URL=database_url)
    assert ready_within(web.url)["checks"]["scheduler"] == "ok"
