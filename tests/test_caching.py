"""Cached endpoints and the memoized count, on the in-process cache and on Redis."""

import os
import pickle
import socket
import threading
import time
import uuid

import pytest
from sqlalchemy import event

from backend.config_loading import ConfigError
from backend.extensions import db
from tests.conftest import NO_SCOPES_KEY, PRODUCTION

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
CACHES = ["SimpleCache"] + (["RedisCache"] if TEST_REDIS_URL else [])


def redis_config(url: str | None = TEST_REDIS_URL, **overrides) -> dict:
    # A prefix of its own, so tests never see each other's entries.
    config = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": url,
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:",
    }
    config.update(overrides)
    return config


@pytest.fixture(params=CACHES)
def cached_app(request, make_app):
    if request.param == "RedisCache":
        return make_app(**redis_config())
    return make_app(CACHE_TYPE="SimpleCache")


@pytest.fixture
def cached_client(cached_app):
    return cached_app.test_client()


@pytest.fixture
def create_item(cached_client, auth_headers):
    def create(**fields):
        owner = create_owner(cached_client, auth_headers)
        body = {"title": "Lamp", "owner_id": owner["id"], **fields}
        return cached_client.post("/api/v1/items", json=body, headers=auth_headers).json

    return create


def create_owner(client, headers) -> dict:
    body = {"email": f"{uuid.uuid4().hex}@example.com", "name": "Owner", "password": "12345678"}
    return client.post("/api/v1/users", json=body, headers=headers).json


def get(client, path, headers):
    response = client.get(path, headers=headers)
    return response.status_code, response.headers.get("X-Cache"), response.json


def test_item_list_is_cached_per_full_query_string(cached_client, auth_headers, create_item):
    item = create_item()

    assert get(cached_client, "/api/v1/items", auth_headers)[1] == "MISS"
    status, cache_status, body = get(cached_client, "/api/v1/items", auth_headers)
    assert (status, cache_status, body["items"]) == (200, "HIT", [item])
    assert get(cached_client, "/api/v1/items?limit=5", auth_headers)[1] == "MISS"
    assert get(cached_client, "/api/v1/items?limit=5&x=1", auth_headers)[1] == "MISS"
    assert get(cached_client, "/api/v1/items?limit=5", auth_headers)[1] == "HIT"


def test_item_detail_is_cached_and_an_update_is_seen_at_once(
    cached_client, auth_headers, create_item
):
    item = create_item(title="Old")
    path = f"/api/v1/items/{item['id']}"
    get(cached_client, path, auth_headers)
    get(cached_client, "/api/v1/items", auth_headers)
    assert get(cached_client, path, auth_headers)[1:] == ("HIT", item)

    cached_client.patch(path, json={"title": "New"}, headers=auth_headers)

    status, cache_status, body = get(cached_client, path, auth_headers)
    assert (status, cache_status, body["title"]) == (200, "MISS", "New")
    assert get(cached_client, "/api/v1/items", auth_headers)[2]["items"][0]["title"] == "New"


def test_creating_and_deleting_items_invalidate_the_list(cached_client, auth_headers, create_item):
    first = create_item()
    get(cached_client, "/api/v1/items", auth_headers)
    second = create_item()

    assert get(cached_client, "/api/v1/items", auth_headers)[2]["items"] == [first, second]

    cached_client.delete(f"/api/v1/items/{first['id']}", headers=auth_headers)
    assert get(cached_client, "/api/v1/items", auth_headers)[2]["items"] == [second]
    assert get(cached_client, f"/api/v1/items/{first['id']}", auth_headers)[0] == 404


def test_deleting_a_user_invalidates_their_cached_items(cached_client, auth_headers, create_item):
    item = create_item()
    path = f"/api/v1/items/{item['id']}"
    get(cached_client, path, auth_headers)

    cached_client.delete(f"/api/v1/users/{item['owner_id']}", headers=auth_headers)

    assert get(cached_client, path, auth_headers)[0] == 404
    assert get(cached_client, "/api/v1/items", auth_headers)[2]["items"] == []


def test_cached_answers_still_need_key_and_scope(cached_client, auth_headers, create_item):
    create_item()
    get(cached_client, "/api/v1/items", auth_headers)

    assert cached_client.get("/api/v1/items").status_code == 401
    no_scope = {"X-AUTH-API-KEY": NO_SCOPES_KEY}
    assert cached_client.get("/api/v1/items", headers=no_scope).status_code == 403


def test_item_stats_are_memoized_until_items_change(
    cached_app, cached_client, auth_headers, create_item
):
    create_item()
    statements = []
    with cached_app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(1))

    assert get(cached_client, "/api/v1/items/stats", auth_headers)[2] == {"items": 1, "owners": 1}
    counted = len(statements)
    assert get(cached_client, "/api/v1/items/stats", auth_headers)[2] == {"items": 1, "owners": 1}
    assert len(statements) == counted  # answered from the cache

    create_item()
    assert get(cached_client, "/api/v1/items/stats", auth_headers)[2] == {"items": 2, "owners": 2}


def test_production_refuses_a_per_process_cache(make_app):
    with pytest.raises(ConfigError, match="CACHE_TYPE SimpleCache keeps a cache per process"):
        make_app(**{**PRODUCTION, "CACHE_TYPE": "SimpleCache"})


def test_redis_cache_type_means_the_json_cache(make_app):
    app = make_app(**redis_config("redis://127.0.0.1:1/0"))

    assert app.config["CACHE_TYPE"] == "backend.caching.SafeRedisCache"


class Hanging:
    """A server that accepts connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hanging_redis():
    server = Hanging()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.close()


@pytest.fixture
def closed_port_redis():
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{bound.getsockname()[1]}/0"


@pytest.mark.parametrize("redis_fixture", ["closed_port_redis", "hanging_redis"])
def test_unusable_redis_costs_one_short_wait_then_nothing(
    request, make_app, auth_headers, redis_fixture, caplog
):
    app = make_app(**redis_config(request.getfixturevalue(redis_fixture)))
    client = app.test_client()
    owner = create_owner(client, auth_headers)

    timings = []
    started = time.monotonic()
    response = client.post(
        "/api/v1/items", json={"title": "Lamp", "owner_id": owner["id"]}, headers=auth_headers
    )
    timings.append(time.monotonic() - started)
    assert response.status_code == 201  # the write went to the database; its invalidation failed
    for _ in range(5):
        started = time.monotonic()
        status, cache_status, body = get(client, "/api/v1/items", auth_headers)
        timings.append(time.monotonic() - started)
        assert (status, cache_status, body["total"]) == (200, "MISS", 1)

    assert max(timings) < 0.5
    warnings = [r for r in caplog.records if r.getMessage().startswith("Cache unavailable")]
    assert len(warnings) == 1 and warnings[0].exc_info is None


def test_an_expired_generation_never_brings_back_old_entries(make_app, auth_headers):
    app = make_app(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=2)
    client = app.test_client()
    owner = create_owner(client, auth_headers)
    item = client.post(
        "/api/v1/items", json={"title": "First", "owner_id": owner["id"]}, headers=auth_headers
    ).json
    path = f"/api/v1/items/{item['id']}"
    time.sleep(1.2)
    get(client, path, auth_headers)  # cached after the generation was set
    time.sleep(1.0)  # the generation would have expired; that entry has not

    client.patch(path, json={"title": "Second"}, headers=auth_headers)

    status, cache_status, body = get(client, path, auth_headers)
    assert (status, cache_status, body["title"]) == (200, "MISS", "Second")


def test_per_client_keys_differ_by_client(app):
    from flask import g

    from backend.auth import Caller
    from backend.caching import _answer_key

    with app.test_request_context("/api/v1/items?limit=5"):
        g.caller = Caller(frozenset(), client="one")
        shared, first = _answer_key("items", False), _answer_key("items", True)
        g.caller = Caller(frozenset(), user_id=1, role="user")
        assert _answer_key("items", False) == shared
        assert _answer_key("items", True) != first


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_code_planted_in_redis_is_never_run(make_app, auth_headers, tmp_path):
    import redis

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    config = redis_config()
    app = make_app(**config)
    client = app.test_client()
    get(client, "/api/v1/items", auth_headers)
    server = redis.Redis.from_url(TEST_REDIS_URL)
    keys = server.keys(config["CACHE_KEY_PREFIX"] + "items:*")
    assert keys
    for key in keys:
        server.set(key, b"!" + pickle.dumps(Payload()))

    status, cache_status, body = get(client, "/api/v1/items", auth_headers)

    # Not JSON, so a miss: answered from the database, and the entry rewritten as JSON.
    assert (status, cache_status, body["total"]) == (200, "MISS", 0)
    assert not (tmp_path / "pwned").exists()
    assert get(client, "/api/v1/items", auth_headers)[1] == "HIT"


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_an_outdated_answer_is_replaced_not_kept_beside_the_new_one(make_app, auth_headers):
    import redis

    config = redis_config()
    client = make_app(**config).test_client()
    owner = create_owner(client, auth_headers)
    for title in ("One", "Two", "Three"):
        client.post(
            "/api/v1/items", json={"title": title, "owner_id": owner["id"]}, headers=auth_headers
        )
        assert get(client, "/api/v1/items", auth_headers)[1] == "MISS"

    server = redis.Redis.from_url(TEST_REDIS_URL)
    assert len(server.keys(config["CACHE_KEY_PREFIX"] + "items:answer:*")) == 1
    _status, cache_status, body = get(client, "/api/v1/items", auth_headers)
    assert (cache_status, body["total"]) == ("HIT", 3)


@pytest.mark.parametrize(
    "planted",
    [
        {"generation": "0", "body": 5},
        {"generation": "0", "body": {"items": []}},
        {"generation": "0"},
        ["not", "an", "answer"],
        "text",
    ],
)
def test_a_cached_answer_of_the_wrong_shape_is_a_miss(make_app, auth_headers, planted):
    from backend.caching import _answer_key
    from backend.extensions import cache

    app = make_app(CACHE_TYPE="SimpleCache")
    client = app.test_client()
    with app.test_request_context("/api/v1/items"):
        cache.set(_answer_key("items", False), planted)

    status, cache_status, body = get(client, "/api/v1/items", auth_headers)

    assert (status, cache_status, body["total"]) == (200, "MISS", 0)
    assert get(client, "/api/v1/items", auth_headers)[1] == "HIT"


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_json_nested_too_deep_to_read_is_a_miss(make_app, auth_headers):
    import redis

    config = redis_config()
    client = make_app(**config).test_client()
    server = redis.Redis.from_url(TEST_REDIS_URL)
    server.set(config["CACHE_KEY_PREFIX"] + "items:generation", "[" * 100_000 + "]" * 100_000)

    status, cache_status, body = get(client, "/api/v1/items", auth_headers)

    assert (status, cache_status, body["total"]) == (200, "MISS", 0)
