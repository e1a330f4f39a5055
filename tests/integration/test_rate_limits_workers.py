"""Rate limits over real HTTP: one count per caller across workers and instances on one Redis."""

import json
import secrets

import pytest

from backend import settings
from tests.integration.servers import TEST_REDIS_URL, request

pytestmark = pytest.mark.integration

ITEMS = "/api/v1/items"


def tight_limits(default: str) -> str:
    return json.dumps(
        {name: "1000 per minute" for name in settings.RATE_LIMITS} | {"default": default}
    )


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_a_limit_shared_by_two_instances(database_url, start_gunicorn):
    shared = {
        "DATABASE_URL": database_url,
        "FLASK_CACHE_KEY_PREFIX": f"integration-{secrets.token_hex(8)}:",
        "FLASK_RATE_LIMITS": tight_limits("6 per minute"),
    }
    first, second = start_gunicorn(2, **shared), start_gunicorn(2, **shared)

    replies = [request(server.url + ITEMS) for server in (first, second) * 4]

    assert [reply.status for reply in replies] == [200] * 6 + [429] * 2
    refused = replies[-1]
    assert refused.body["message"].startswith("Too many requests: the limit is 6 per 1 minute.")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_without_redis_a_worker_counts_alone_and_says_so(database_url, start_gunicorn):
    server = start_gunicorn(
        1,
        DATABASE_URL=database_url,
        FLASK_CACHE_TYPE="NullCache",
        FLASK_RATE_LIMITS=tight_limits("3 per minute"),
    )

    statuses = [request(server.url + ITEMS).status for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert "Rate limits are counted by each worker on its own" in server.stderr()
