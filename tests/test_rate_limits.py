"""Rate limits: per caller, tighter on sign-in and password reset, 429 JSON, Redis outages."""

import contextlib
import logging
import os
import secrets
import socket
import threading
import time

import jwt
import pytest
import redis

from backend import settings
from backend.config_loading import ConfigError
from tests.conftest import NO_SCOPES_KEY, REPORTING_KEY, api_operations

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
ITEMS = "/api/v1/items"
# Far above what a test sends: each test tightens the limits it is about.
LOOSE = {name: "1000 per minute" for name in settings.RATE_LIMITS}


def limits(**tight: str) -> dict:
    return {"RATE_LIMITS": LOOSE | tight}


@pytest.fixture
def app(make_app):
    return make_app(**limits(default="3 per minute"))


def forged_token() -> str:
    claims = {"sub": "1", "sid": 1, "purpose": "access", "exp": int(time.time()) + 600}
    return jwt.encode(claims, "not-the-apps-secret-key-of-32-bytes", algorithm="HS256")


def test_a_caller_over_the_limit_gets_429_json_saying_when_to_retry(client, auth_headers):
    for _ in range(3):
        assert client.get(ITEMS, headers=auth_headers).status_code == 200

    refused = client.get(ITEMS, headers=auth_headers)

    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert refused.json == {
        "message": f"Too many requests: the limit is 3 per 1 minute. Try again in {wait} seconds.",
        "request_id": refused.headers["X-Request-ID"],
    }
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Reset"]) > time.time()


def test_each_client_user_and_address_has_its_own_count(client, auth_headers, make_member):
    _, user_headers = make_member()  # one request with the default key
    for _ in range(3):
        assert client.get(ITEMS, headers=user_headers).status_code == 200
    assert client.get(ITEMS, headers=user_headers).status_code == 429

    assert client.get(ITEMS, headers=auth_headers).status_code == 200
    assert client.get(ITEMS, headers={"X-AUTH-API-KEY": REPORTING_KEY}).status_code == 200
    assert client.get(ITEMS).status_code == 401


@pytest.mark.parametrize(
    "credentials",
    [{"X-AUTH-API-KEY": "made-up-key"}, {"Authorization": f"Bearer {forged_token()}"}],
    ids=["unknown key", "forged token"],
)
def test_credentials_that_do_not_verify_count_as_the_address(client, credentials):
    for _ in range(3):
        assert client.get(ITEMS).status_code == 401

    assert client.get(ITEMS, headers=credentials).status_code == 429
    elsewhere = client.get(ITEMS, headers=credentials, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert elsewhere.status_code == 401
    # A known key without the scope still has a count of its own.
    assert client.get(ITEMS, headers={"X-AUTH-API-KEY": NO_SCOPES_KEY}).status_code == 403


@pytest.mark.parametrize(
    ("name", "first", "then"),
    [
        ("login", "/auth/login", "/auth/login"),
        ("register", "/auth/register", "/auth/register"),
        ("password_reset", "/auth/password-reset", "/auth/password-reset"),
        ("password_reset", "/auth/password-reset", "/auth/password-reset/confirm"),
    ],
)
def test_sign_in_sign_up_and_password_reset_have_their_own_limits(make_app, name, first, then):
    client = make_app(**limits(default="1 per minute", **{name: "1 per minute"})).test_client()
    body = {"email": "someone@example.com", "password": "a long password", "name": "Someone"}
    body_then = body | {"token": "not-a-token"} if then.endswith("confirm") else body
    assert client.get(ITEMS).status_code == 401  # the default count, used up

    assert client.post(f"/api/v1{first}", json=body).status_code not in (429, 500)
    refused = client.post(f"/api/v1{then}", json=body_then)

    assert refused.status_code == 429
    assert "the limit is 1 per 1 minute" in refused.json["message"]
    assert client.get(ITEMS).status_code == 429


def test_health_checks_and_cors_preflights_are_not_limited_and_unknown_paths_are(make_app):
    app = make_app(**limits(default="1 per minute"), ALLOWED_ORIGINS=["https://app.example.com"])
    client = app.test_client()
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}

    for _ in range(3):
        assert client.get("/health").status_code == 200
        assert client.options(ITEMS, headers=preflight).status_code == 204
    assert client.get("/no-such-path").status_code == 404
    assert client.get("/no-such-path").status_code == 429


def test_limits_can_be_turned_off(make_app):
    client = make_app(**limits(default="1 per minute"), RATELIMIT_ENABLED=False).test_client()

    assert {client.get(ITEMS).status_code for _ in range(3)} == {401}


def test_each_app_counts_on_its_own_in_memory(make_app):
    first, second = (make_app(**limits(default="1 per minute")).test_client() for _ in range(2))

    assert [first.get(ITEMS).status_code, first.get(ITEMS).status_code] == [401, 429]
    assert second.get(ITEMS).status_code == 401


@contextlib.contextmanager
def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


@contextlib.contextmanager
def silent_server():
    """Accepts connections (the kernel does) and never answers: a Redis that hangs."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize("unreachable", [closed_port, silent_server], ids=["down", "hanging"])
def test_while_redis_is_unreachable_each_worker_counts_alone_after_one_warning(
    make_app, caplog, unreachable
):
    with unreachable() as port:
        app = make_app(
            **limits(default="2 per minute"), RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0"
        )
        client = app.test_client()
        statuses: list[int] = []
        # In a thread, so that requests left hanging fail the test instead of the run.
        asking = threading.Thread(
            target=lambda: statuses.extend(client.get(ITEMS).status_code for _ in range(4)),
            daemon=True,
        )
        asking.start()
        asking.join(timeout=30)

    assert statuses == [401, 401, 429, 429]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "Rate limit storage unreachable - falling back to in-memory storage"
    ]


@pytest.fixture
def redis_prefix():
    """A key prefix of the test's own in TEST_REDIS_URL, emptied afterwards."""
    prefix = f"test-limits-{secrets.token_hex(6)}:"
    yield prefix
    server = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(server.scan_iter(f"{prefix}*"))
    assert keys, "the counts were not in Redis under the prefix"
    server.delete(*keys)


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_apps_on_one_redis_share_the_counts(make_app, redis_prefix):
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": TEST_REDIS_URL}
    config |= {"CACHE_KEY_PREFIX": redis_prefix} | limits(default="3 per minute")
    first, second = (make_app(**config).test_client() for _ in range(2))

    statuses = [client.get(ITEMS).status_code for client in (first, second, first, second)]

    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize(
    ("rate_limits", "problem"),
    [
        (LOOSE | {"login": "often"}, "RATE_LIMITS['login'] is 'often'"),
        ({"default": "10 per minute"}, "RATE_LIMITS has no 'login' limit"),
        ("10 per minute", "RATE_LIMITS must look like"),
    ],
)
def test_limits_that_cannot_be_read_stop_the_app(make_app, rate_limits, problem):
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[")):
        make_app(RATE_LIMITS=rate_limits)


def test_endpoints_name_only_configured_limits_and_document_429():
    named = {getattr(op.definition.func, "rate_limit", "default") for op in api_operations()}
    assert named <= set(settings.RATE_LIMITS)
    assert {"login", "password_reset"} <= named
    for operation in api_operations():
        assert 429 in operation.definition.response_body_schema, operation
