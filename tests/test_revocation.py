"""Ending a session is seen by every worker at the next request, with Redis and without it.

Two apps built from the same config stand for two workers (or hosts) sharing the
database and Redis: on SQLite they share a database file, on PostgreSQL the test
database. A token is first used on worker B, so B's check is cached in Redis; the
session then ends on worker A, and B must refuse the token at its very next request.
"""

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from backend.extensions import db
from backend.features.accounts import access
from backend.mail import flush, outbox
from tests.conftest import AUTH_KEY, PASSWORD, TEST_DATABASE_URL, bearer, sign_in

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not TEST_REDIS_URL,
    reason="needs a shared Redis: set TEST_REDIS_URL=redis://127.0.0.1:6379/0",
)
KEY = {"X-AUTH-API-KEY": AUTH_KEY}
NEW_PASSWORD = "a brand new password"


class Proxy:
    """A TCP relay to Redis that can be cut and restored: one worker's link to Redis."""

    def __init__(self, target: str) -> None:
        match = re.match(r"redis://([^:/]+):(\d+)", target)
        assert match, target
        self.target = (match[1], int(match[2]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = target.replace(
            f"{match[1]}:{match[2]}", f"127.0.0.1:{self.listener.getsockname()[1]}"
        )
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                incoming = self.listener.accept()[0]
            except OSError:
                return
            if not self.up:
                incoming.close()
                continue
            outgoing = socket.create_connection(self.target)
            self.sockets += [incoming, outgoing]
            for source, sink in ((incoming, outgoing), (outgoing, incoming)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def cut(self) -> None:
        self.up = False
        for connection in self.sockets:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.sockets = []

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def shared_database(tmp_path):
    """Config for apps that share one database: PostgreSQL's, or a SQLite file."""
    if TEST_DATABASE_URL:
        return {}
    return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/shared.db"}


@pytest.fixture
def make_worker(make_app, shared_database):
    """Builds an app on the shared database; the first one creates the tables."""
    built = []

    def make(**config) -> Flask:
        app = make_app(**shared_database, **config)
        if not built and not TEST_DATABASE_URL:
            with app.app_context():
                db.create_all()
        built.append(app)
        return app

    return make


@pytest.fixture
def prefix():
    """A key prefix of the test's own in Redis, deleted afterwards."""
    prefix = f"test-revocation-{uuid.uuid4().hex}:"
    yield prefix
    if TEST_REDIS_URL:
        server = redis_server()
        keys = list(server.scan_iter(match=prefix + "*"))
        if keys:
            server.delete(*keys)


@pytest.fixture
def proxy():
    relay = Proxy(TEST_REDIS_URL)
    yield relay
    relay.close()


def redis_server():
    import redis

    return redis.Redis.from_url(TEST_REDIS_URL)


def redis_config(prefix: str, url: str | None = None, **overrides) -> dict:
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": url or TEST_REDIS_URL,
        "CACHE_KEY_PREFIX": prefix,
        **overrides,
    }


@dataclass
class Workers:
    a: FlaskClient
    b: FlaskClient
    app_a: Flask
    app_b: Flask


@pytest.fixture
def workers(make_worker, prefix):
    app_a = make_worker(**redis_config(prefix))
    app_b = make_worker(**redis_config(prefix))
    return Workers(app_a.test_client(), app_b.test_client(), app_a, app_b)


def add_user(client: FlaskClient, role: str = "user") -> dict:
    body = {
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "name": "Someone",
        "password": PASSWORD,
        "role": role,
    }
    response = client.post("/api/v1/users", json=body, headers=KEY)
    assert response.status_code == 201, response.json
    return response.json


def me(client: FlaskClient, headers: dict) -> int:
    return client.get("/api/v1/me", headers=headers).status_code


def session_id_of(client: FlaskClient, headers: dict) -> int:
    sessions = client.get("/api/v1/me/sessions", headers=headers).json["items"]
    return next(session["id"] for session in sessions if session["current"])


def count_queries(app: Flask, table: str) -> list[str]:
    """The statements the app sends from now on that name the table."""
    seen: list[str] = []

    def note(_connection, _cursor, statement, *_args) -> None:
        if table in statement:
            seen.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", note)
    return seen


# Ways a session ends, each done on worker A: (client A, the user, their token pair).


def log_out(client, user, tokens):
    assert client.post("/api/v1/auth/logout", headers=bearer(tokens)).status_code == 204


def end_it_from_another_device(client, user, tokens):
    other = bearer(sign_in(client, user["email"]))
    path = f"/api/v1/me/sessions/{session_id_of(client, bearer(tokens))}"
    assert client.delete(path, headers=other).status_code == 204


def end_all_others_from_another_device(client, user, tokens):
    other = bearer(sign_in(client, user["email"]))
    assert client.delete("/api/v1/me/sessions", headers=other).status_code == 204


def change_password_from_another_device(client, user, tokens):
    other = bearer(sign_in(client, user["email"]))
    body = {"password": NEW_PASSWORD, "current_password": PASSWORD}
    assert client.patch("/api/v1/me", json=body, headers=other).status_code == 200
    assert client.get("/api/v1/me", headers=other).status_code == 200  # that one stays


def reset_password_by_mail(client, user, tokens):
    response = client.post("/api/v1/auth/password-reset", json={"email": user["email"]})
    assert response.status_code == 202
    flush()
    text = outbox(client.application)[-1].get_content()
    token = re.search(r"token=(\S+)", text)[1]
    body = {"token": token, "password": NEW_PASSWORD}
    assert client.post("/api/v1/auth/password-reset/confirm", json=body).status_code == 204


def admin_blocks(client, user, tokens):
    path = f"/api/v1/users/{user['id']}"
    assert client.patch(path, json={"blocked": True}, headers=KEY).status_code == 200


def admin_sets_password(client, user, tokens):
    path = f"/api/v1/users/{user['id']}"
    assert client.patch(path, json={"password": NEW_PASSWORD}, headers=KEY).status_code == 200


def admin_deletes(client, user, tokens):
    assert client.delete(f"/api/v1/users/{user['id']}", headers=KEY).status_code == 204


def refresh_token_reused(client, user, tokens):
    old = {"refresh_token": tokens["refresh_token"]}
    newer = client.post("/api/v1/auth/refresh", json=old)
    assert newer.status_code == 200
    assert client.post("/api/v1/auth/refresh", json=old).status_code == 401  # a stolen copy
    assert me(client, bearer(newer.json)) == 401  # the whole session ended


ENDINGS = [
    log_out,
    end_it_from_another_device,
    end_all_others_from_another_device,
    change_password_from_another_device,
    reset_password_by_mail,
    admin_blocks,
    admin_sets_password,
    admin_deletes,
    refresh_token_reused,
]


@needs_redis
@pytest.mark.parametrize("end", ENDINGS, ids=[end.__name__ for end in ENDINGS])
def test_a_session_ended_on_one_worker_is_refused_at_once_by_another(workers, end, prefix):
    user = add_user(workers.a)
    tokens = sign_in(workers.a, user["email"])
    headers = bearer(tokens)
    assert me(workers.b, headers) == 200  # B has the session in the shared cache now
    key = f"{prefix}session:{session_id_of(workers.b, headers)}"
    assert redis_server().get(key) is not None

    end(workers.a, user, tokens)

    assert me(workers.b, headers) == 401
    assert me(workers.a, headers) == 401
    refreshed = workers.b.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


@needs_redis
def test_bearer_checks_are_answered_by_the_cache_while_redis_is_up(workers, prefix):
    user = add_user(workers.a)
    headers = bearer(sign_in(workers.a, user["email"]))
    session_queries = count_queries(workers.app_b, "login_sessions")

    assert me(workers.b, headers) == 200
    assert len(session_queries) == 1  # the first check asks the database...
    for _ in range(3):
        assert me(workers.b, headers) == 200
    assert len(session_queries) == 1  # ...the next ones do not

    session_id = session_id_of(workers.b, headers)
    stored = redis_server().get(f"{prefix}session:{session_id}")
    assert stored == b'{"user": %d, "role": "user"}' % user["id"]


@needs_redis
def test_with_session_cache_seconds_0_every_check_asks_the_database(make_worker, prefix):
    worker = make_worker(**redis_config(prefix, SESSION_CACHE_SECONDS=0))
    client = worker.test_client()
    user = add_user(client)
    headers = bearer(sign_in(client, user["email"]))
    session_queries = count_queries(worker, "login_sessions")

    for _ in range(3):
        assert me(client, headers) == 200

    assert len(session_queries) == 3
    assert redis_server().get(f"{prefix}session:{session_id_of(client, headers)}") is None


@needs_redis
def test_cache_entries_live_session_cache_seconds_and_revocations_as_long_as_a_token(
    make_worker, prefix
):
    client = make_worker(**redis_config(prefix, SESSION_CACHE_SECONDS=7)).test_client()
    user = add_user(client)
    headers = bearer(sign_in(client, user["email"]))
    me(client, headers)
    key = f"{prefix}session:{session_id_of(client, headers)}"
    server = redis_server()
    assert 0 < server.ttl(key) <= 7

    client.post("/api/v1/auth/logout", headers=headers)

    assert server.get(key) == b'{"revoked": true}'
    assert 7 < server.ttl(key) <= client.application.config["ACCESS_TOKEN_TTL"]


@needs_redis
def test_a_revoked_token_stays_refused_once_the_cache_forgot_it(workers, prefix):
    user = add_user(workers.a)
    headers = bearer(sign_in(workers.a, user["email"]))
    assert me(workers.b, headers) == 200
    assert workers.a.post("/api/v1/auth/logout", headers=headers).status_code == 204
    server = redis_server()
    server.delete(*server.keys(prefix + "session:*"))  # expired, evicted or Redis restarted
    session_queries = count_queries(workers.app_b, "login_sessions")

    assert me(workers.b, headers) == 401
    assert len(session_queries) == 1  # the database said revoked...
    assert server.get(server.keys(prefix + "session:*")[0]) == b'{"revoked": true}'
    assert me(workers.b, headers) == 401
    assert len(session_queries) == 1  # ...and the cache says so again


@needs_redis
def test_an_alive_entry_expiring_sends_the_check_back_to_the_database(make_worker, prefix):
    config = redis_config(prefix, SESSION_CACHE_SECONDS=1)
    a, b = make_worker(**config).test_client(), make_worker(**config).test_client()
    user = add_user(a)
    headers = bearer(sign_in(a, user["email"]))
    assert me(b, headers) == 200
    session_queries = count_queries(b.application, "login_sessions")
    redis_server().delete(*redis_server().keys(prefix + "session:*"))  # as if expired

    assert me(b, headers) == 200
    assert len(session_queries) == 1


@needs_redis
@pytest.mark.parametrize(("before", "after"), [("user", "admin"), ("admin", "user")])
def test_a_role_change_on_one_worker_is_seen_at_once_by_another(workers, before, after):
    user = add_user(workers.a, role=before)
    headers = bearer(sign_in(workers.a, user["email"]))
    expected = {"user": 403, "admin": 200}
    assert workers.b.get("/api/v1/users", headers=headers).status_code == expected[before]

    path = f"/api/v1/users/{user['id']}"
    assert workers.a.patch(path, json={"role": after}, headers=KEY).status_code == 200

    assert workers.b.get("/api/v1/users", headers=headers).status_code == expected[after]
    assert workers.b.get("/api/v1/me", headers=headers).json["role"] == after


@needs_redis
def test_a_role_change_racing_a_cache_fill_is_not_lost(workers, monkeypatch):
    """Worker B reads the old role from the database; before B writes it to the cache,
    worker A commits a demotion and clears the cache. B's late write must not bring the
    old role back for SESSION_CACHE_SECONDS."""
    user = add_user(workers.a, role="admin")
    headers = bearer(sign_in(workers.a, user["email"]))
    read_state = access._state_in_database
    raced = []

    def read_then_demote(session_id):
        state = read_state(session_id)
        if not raced:
            raced.append(session_id)
            path = f"/api/v1/users/{user['id']}"
            response = workers.a.patch(path, json={"role": "user"}, headers=KEY)
            assert response.status_code == 200
        return state

    monkeypatch.setattr(access, "_state_in_database", read_then_demote)
    workers.b.get("/api/v1/me", headers=headers)  # B's check, with A's demotion inside it
    monkeypatch.setattr(access, "_state_in_database", read_state)

    assert raced
    status = workers.b.get("/api/v1/users", headers=headers).status_code
    assert status == 403, "B's late cache fill brought back the role admin after the demotion"
    assert workers.a.get("/api/v1/users", headers=headers).status_code == 403


@needs_redis
def test_a_session_ended_while_a_workers_redis_link_is_down_is_refused_there(
    make_worker, prefix, proxy
):
    a = make_worker(**redis_config(prefix)).test_client()
    b = make_worker(**redis_config(prefix, proxy.url)).test_client()
    user = add_user(a)
    headers = bearer(sign_in(a, user["email"]))
    assert me(b, headers) == 200  # cached alive
    proxy.cut()

    assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204

    assert me(b, headers) == 401  # B cannot read Redis: it asks the database
    proxy.restore()
    assert me(b, headers) == 401


@needs_redis
def test_a_session_ended_while_its_worker_cannot_reach_redis_is_refused_elsewhere_within_the_bound(
    make_worker, prefix, proxy
):
    """Worker A cannot reach Redis when it ends the session; worker B can, and had the
    session cached alive. A's mark cannot reach B: B refuses the token once its entry
    expires, SESSION_CACHE_SECONDS at most (README, "Auth": the one gap)."""
    a = make_worker(**redis_config(prefix, proxy.url, SESSION_CACHE_SECONDS=1)).test_client()
    b = make_worker(**redis_config(prefix, SESSION_CACHE_SECONDS=1)).test_client()
    user = add_user(b)
    headers = bearer(sign_in(b, user["email"]))
    assert me(b, headers) == 200  # cached alive, for 1 s
    proxy.cut()

    assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert me(a, headers) == 401
    time.sleep(1.1)

    assert me(b, headers) == 401


@needs_redis
@pytest.mark.parametrize("change", ["logout", "demotion"])
def test_a_change_made_while_a_worker_backs_off_from_redis_reaches_the_others(
    make_worker, prefix, proxy, change
):
    """Worker A saw a Redis error a moment ago and leaves Redis alone for
    CACHE_RETRY_AFTER seconds; Redis is fine again. A revocation or a role change made
    on A meanwhile must still reach worker B, which cached the session before."""
    a = make_worker(**redis_config(prefix, proxy.url, CACHE_RETRY_AFTER=60)).test_client()
    b = make_worker(**redis_config(prefix)).test_client()
    user = add_user(b, role="admin")
    headers = bearer(sign_in(b, user["email"]))
    assert b.get("/api/v1/users", headers=headers).status_code == 200  # cached: admin
    proxy.cut()
    assert me(a, headers) == 200  # A's Redis error: A backs off, checks in the database
    proxy.restore()

    if change == "logout":
        assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204
        expected = 401
    else:
        path = f"/api/v1/users/{user['id']}"
        assert a.patch(path, json={"role": "user"}, headers=KEY).status_code == 200
        expected = 403

    status = b.get("/api/v1/users", headers=headers).status_code
    assert status == expected, f"B still serves the cached state from before the {change}"


@pytest.fixture
def closed_port_redis():
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{bound.getsockname()[1]}/0"


def test_with_redis_unreachable_tokens_are_checked_in_the_database(
    make_worker, prefix, closed_port_redis
):
    config = redis_config(prefix, closed_port_redis)
    a, b = make_worker(**config).test_client(), make_worker(**config).test_client()
    user = add_user(a)
    tokens = sign_in(a, user["email"])
    headers = bearer(tokens)
    session_queries = count_queries(b.application, "login_sessions")

    assert me(b, headers) == 200
    assert me(b, headers) == 200
    assert len(session_queries) == 2  # every check asks the database
    assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204

    for client in (a, b):
        assert me(client, headers) == 401
        refreshed = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert me(a, bearer(sign_in(a, user["email"]))) == 200  # signing in still works


@pytest.mark.parametrize("cache_type", ["SimpleCache", "NullCache"])
def test_without_a_shared_cache_every_check_asks_the_database(make_worker, cache_type):
    a = make_worker(CACHE_TYPE=cache_type).test_client()
    b = make_worker(CACHE_TYPE=cache_type).test_client()
    user = add_user(a)
    headers = bearer(sign_in(a, user["email"]))
    session_queries = count_queries(b.application, "login_sessions")

    for _ in range(3):
        assert me(b, headers) == 200
    assert len(session_queries) == 3

    assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204

    assert me(b, headers) == 401
    assert me(a, headers) == 401


@pytest.mark.parametrize("cache_type", ["SimpleCache", "NullCache"])
def test_without_a_shared_cache_a_role_change_is_seen_at_once(make_worker, cache_type):
    a = make_worker(CACHE_TYPE=cache_type).test_client()
    b = make_worker(CACHE_TYPE=cache_type).test_client()
    user = add_user(a, role="admin")
    headers = bearer(sign_in(a, user["email"]))
    assert b.get("/api/v1/users", headers=headers).status_code == 200

    a.patch(f"/api/v1/users/{user['id']}", json={"role": "user"}, headers=KEY)

    assert b.get("/api/v1/users", headers=headers).status_code == 403
