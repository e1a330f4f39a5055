"""Accounts under several gunicorn workers: a revocation is seen by every worker at once,
also while Redis is down; login limits hold across workers."""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend import create_app
from backend.extensions import db
from backend.features.accounts import tokens
from backend.features.accounts.password_reset import fingerprint
from backend.features.users.service import find_by_email
from tests.conftest import make_config
from tests.integration.servers import JWT_SECRET_KEY, TEST_REDIS_URL, request
from tests.integration.test_cache_workers import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "a long password"


def sign_up_and_in(server, email: str, device: str = "laptop") -> dict:
    body = {"email": email, "name": "Grace", "password": PASSWORD}
    assert request(server.url + "/api/v1/auth/register", "POST", body, key=None).status == 201
    return sign_in(server, email, device)


def sign_in(server, email: str, device: str = "laptop") -> dict:
    body = {"email": email, "password": PASSWORD, "device": device}
    reply = request(server.url + "/api/v1/auth/login", "POST", body, key=None)
    assert reply.status == 200, reply.body
    return reply.body


def me_statuses(server, tokens: dict, count: int = 30) -> set[int]:
    """Statuses of GET /me on fresh connections, so that every worker answers some."""
    return {
        request(server.url + "/api/v1/me", token=tokens["access_token"]).status
        for _ in range(count)
    }


def test_logout_is_seen_by_every_worker_at_once(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    phone = sign_up_and_in(server, "grace@example.com", "phone")
    laptop = sign_in(server, "grace@example.com", "laptop")
    assert me_statuses(server, phone) == me_statuses(server, laptop) == {200}

    reply = request(server.url + "/api/v1/auth/logout", "POST", token=phone["access_token"])

    assert reply.status == 204
    assert me_statuses(server, phone) == {401}
    refresh = {"refresh_token": phone["refresh_token"]}
    assert request(server.url + "/api/v1/auth/refresh", "POST", refresh, key=None).status == 401
    assert me_statuses(server, laptop) == {200}


def test_failed_logins_are_limited_across_workers(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    sign_up_and_in(server, "ada@example.com")
    wrong = {"email": "ada@example.com", "password": "not the password"}

    statuses = [
        request(server.url + "/api/v1/auth/login", "POST", wrong, key=None).status for _ in range(5)
    ]
    refused = request(server.url + "/api/v1/auth/login", "POST", wrong, key=None)

    assert statuses == [401] * 5
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_a_revoked_token_stays_refused_while_redis_is_down_and_after(
    database_url, start_gunicorn, tmp_path
):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        server = start_gunicorn(
            workers=3,
            DATABASE_URL=database_url,
            FLASK_CACHE_TYPE="RedisCache",
            FLASK_CACHE_REDIS_URL=redis.url,
            FLASK_CACHE_RETRY_AFTER="1",
            FLASK_SESSION_CACHE_SECONDS="2",
        )
        tokens = sign_up_and_in(server, "grace@example.com")
        assert me_statuses(server, tokens) == {200}  # every worker's answer is cached

        redis.stop(keep_data=True)
        assert me_statuses(server, tokens) == {200}  # checked in the database
        logout = request(server.url + "/api/v1/auth/logout", "POST", token=tokens["access_token"])
        assert logout.status == 204
        assert me_statuses(server, tokens) == {401}

        # Back with the entries it held: the revocation could not reach it, so they
        # may be served until they expire (SESSION_CACHE_SECONDS), no longer.
        redis.start()
        time.sleep(2.5)
        assert me_statuses(server, tokens) == {401}
    finally:
        redis.stop()


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_blocking_and_role_changes_reach_every_worker_at_once(
    database_url, start_gunicorn, tmp_path
):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    tokens = sign_up_and_in(server, "grace@example.com")
    user_id = request(server.url + "/api/v1/me", token=tokens["access_token"]).body["id"]
    users = server.url + "/api/v1/users"
    assert {request(users, token=tokens["access_token"]).status for _ in range(20)} == {403}

    assert request(f"{users}/{user_id}", "PATCH", {"role": "admin"}).status == 200
    assert {request(users, token=tokens["access_token"]).status for _ in range(20)} == {200}

    assert request(f"{users}/{user_id}", "PATCH", {"blocked": True}).status == 200
    assert me_statuses(server, tokens) == {401}


def test_racing_refreshes_and_reset_confirms_each_succeed_once(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    tokens = sign_up_and_in(server, "grace@example.com")
    token = reset_token(database_url, "grace@example.com")
    refresh = {"refresh_token": tokens["refresh_token"]}
    confirm = {"token": token, "password": "a new long password"}

    with ThreadPoolExecutor(max_workers=8) as pool:
        refreshes = list(
            pool.map(
                lambda _: request(server.url + "/api/v1/auth/refresh", "POST", refresh, key=None),
                range(4),
            )
        )
        confirms = list(
            pool.map(
                lambda _: request(
                    server.url + "/api/v1/auth/password-reset/confirm", "POST", confirm, key=None
                ),
                range(4),
            )
        )

    assert sorted(reply.status for reply in refreshes) == [200, 401, 401, 401]
    assert sorted(reply.status for reply in confirms) == [204, 400, 400, 400]


def reset_token(database_url: str, email: str) -> str:
    """The token the reset mail would carry, made from the stored hash as the app makes it."""
    app = create_app(
        make_config(SQLALCHEMY_DATABASE_URI=database_url, JWT_SECRET_KEY=JWT_SECRET_KEY)
    )
    with app.app_context():
        user = find_by_email(email)
        token = tokens.issue(tokens.PASSWORD_RESET, user.id, 600, pwd=fingerprint(user))
        db.engine.dispose()
    return token
