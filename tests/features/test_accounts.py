"""The accounts feature as its users see it: registering, signing in, tokens, sessions,
password resets, the `flask users` command, the clean-up jobs and the audit trail."""

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from backend.extensions import db
from backend.features.accounts import tokens
from backend.features.accounts.jobs import prune_sessions
from backend.features.accounts.models import LoginSession
from backend.features.accounts.password_reset import fingerprint
from backend.features.audit.jobs import prune_audit_events
from backend.features.audit.models import AuditEvent
from backend.features.users.models import User
from backend.mail import flush, outbox, sending
from tests.conftest import PASSWORD, bearer, error_body, sign_in

NEW_PASSWORD = "a brand new password"
WRONG_PASSWORD = "not the password"


def login(client, email, password=PASSWORD, ip=None, **extra):
    """The login response, from the client's own address unless `ip` is given."""
    return client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password, **extra},
        environ_base={"REMOTE_ADDR": ip} if ip else {},
    )


def refresh(client, pair):
    return client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})


def me(client, pair):
    return client.get("/api/v1/me", headers=bearer(pair))


def register(client, **overrides):
    body = {"email": "ada@example.com", "name": "Ada", "password": "analytical engine"}
    return client.post("/api/v1/auth/register", json={**body, **overrides})


def request_reset(client, email, ip=None):
    return client.post(
        "/api/v1/auth/password-reset",
        json={"email": email},
        environ_base={"REMOTE_ADDR": ip} if ip else {},
    )


def reset_token(app, client, email):
    """Asks for a reset and reads the token from the link in the message sent."""
    flush()
    before = len(outbox(app))
    assert request_reset(client, email).status_code == 202
    flush()
    [message] = outbox(app)[before:]
    prefix = app.config["PASSWORD_RESET_URL"].partition("{token}")[0]
    return re.search(re.escape(prefix) + r"(\S+)", message.get_content()).group(1)


def confirm_reset(client, token, password=NEW_PASSWORD):
    return client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": password}
    )


def change_my_password(client, pair, password=NEW_PASSWORD, current_password=PASSWORD):
    return client.patch(
        "/api/v1/me",
        json={"password": password, "current_password": current_password},
        headers=bearer(pair),
    )


def my_sessions(client, pair):
    response = client.get("/api/v1/me/sessions", headers=bearer(pair))
    assert response.status_code == 200, response.json
    return response.json


def current_session_id(client, pair):
    return next(s["id"] for s in my_sessions(client, pair)["items"] if s["current"])


# POST /auth/register


def test_register_returns_201_with_a_user_role_and_location_and_no_password(client):
    response = register(client, email="Ada@Example.com")

    assert response.status_code == 201
    user = response.json
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada"
    assert user["role"] == "user"
    assert user["blocked"] is False
    assert "password" not in user and "password_hash" not in user
    assert "analytical engine" not in response.get_data(as_text=True)


def test_registered_user_can_sign_in(client):
    register(client, email="ada@example.com", password="analytical engine")

    response = login(client, "ada@example.com", "analytical engine")

    assert response.status_code == 200


def test_register_with_an_email_taken_in_another_case_is_409(client, make_user):
    make_user(email="ada@example.com")

    response = register(client, email="ADA@example.COM")

    assert response.status_code == 409
    assert response.json["errors"] == {"email": "Already registered."}


@pytest.mark.parametrize("password", ["p" * 7, "p" * 129])
def test_register_with_a_password_too_short_or_too_long_is_400(client, password):
    response = register(client, password=password)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["password"]


@pytest.mark.parametrize("password", ["p" * 8, "p" * 128])
def test_register_accepts_passwords_of_8_to_128_characters(client, password):
    response = register(client, password=password)

    assert response.status_code == 201


def test_register_when_registration_is_closed_is_403(make_app):
    client = make_app(REGISTRATION_OPEN=False).test_client()

    response = register(client)

    assert response.status_code == 403
    assert response.json["message"].startswith("Registration is closed")


@pytest.mark.parametrize("extra", [{"role": "admin"}, {"blocked": False}, {"id": 1}])
def test_register_with_an_unknown_field_is_400_and_creates_nobody(client, auth_headers, extra):
    response = register(client, **extra)

    assert response.status_code == 400
    assert list(response.json["errors"]) == list(extra)
    assert client.get("/api/v1/users", headers=auth_headers).json["total"] == 0


# POST /auth/login


def test_login_returns_a_bearer_token_pair(app, client, make_user):
    user = make_user()

    response = login(client, user["email"])

    assert response.status_code == 200
    assert set(response.json) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert response.json["token_type"] == "Bearer"
    assert response.json["expires_in"] == app.config["ACCESS_TOKEN_TTL"]
    assert response.json["access_token"] != response.json["refresh_token"]


def test_login_access_token_opens_get_me(client, make_user):
    user = make_user()
    pair = sign_in(client, user["email"])

    response = me(client, pair)

    assert response.status_code == 200
    assert response.json["id"] == user["id"]


def test_login_email_is_matched_in_any_case(client, make_user):
    make_user(email="ada@example.com")

    response = login(client, "ADA@Example.com")

    assert response.status_code == 200


def test_login_with_unknown_email_and_with_wrong_password_get_the_same_401(client, make_user):
    user = make_user()

    unknown = login(client, "nobody@example.com")
    wrong = login(client, user["email"], WRONG_PASSWORD)

    assert unknown.status_code == wrong.status_code == 401
    assert error_body(unknown) == error_body(wrong) == {"message": "Wrong email or password."}


def test_login_of_a_blocked_user_with_the_right_password_is_403(client, auth_headers, make_user):
    user = make_user()
    client.patch(f"/api/v1/users/{user['id']}", json={"blocked": True}, headers=auth_headers)

    response = login(client, user["email"])

    assert response.status_code == 403
    assert error_body(response) == {"message": "This account is blocked."}


def test_login_of_a_blocked_user_with_a_wrong_password_is_401(client, auth_headers, make_user):
    user = make_user()
    client.patch(f"/api/v1/users/{user['id']}", json={"blocked": True}, headers=auth_headers)

    response = login(client, user["email"], WRONG_PASSWORD)

    assert response.status_code == 401
    assert error_body(response) == {"message": "Wrong email or password."}


def test_sixth_login_for_one_email_is_429_with_retry_after_even_with_the_right_password(
    app, client, make_user
):
    user = make_user()
    for attempt in range(5):
        login(client, user["email"], WRONG_PASSWORD, ip=f"10.0.0.{attempt}")

    response = login(client, user["email"], ip="10.0.0.99")

    assert response.status_code == 429
    assert response.is_json
    assert response.json["message"].startswith("Too many attempts")
    assert response.headers["Retry-After"].isdecimal()
    assert 0 < int(response.headers["Retry-After"]) <= app.config["LOGIN_ATTEMPTS_WINDOW"]


def test_failed_logins_for_one_email_do_not_limit_another_email(client, make_user):
    user, other = make_user(), make_user()
    for attempt in range(6):
        login(client, user["email"], WRONG_PASSWORD, ip=f"10.0.0.{attempt}")

    response = login(client, other["email"], ip="10.0.1.1")

    assert response.status_code == 200


def test_sixth_login_from_one_ip_is_429_even_for_another_email_with_the_right_password(
    client, make_user
):
    user = make_user()
    for attempt in range(5):
        login(client, f"guess{attempt}@example.com", ip="10.0.0.1")

    response = login(client, user["email"], ip="10.0.0.1")

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_failed_logins_from_one_ip_do_not_limit_another_ip(client, make_user):
    user = make_user()
    for attempt in range(6):
        login(client, f"guess{attempt}@example.com", ip="10.0.0.1")

    response = login(client, user["email"], ip="10.0.0.2")

    assert response.status_code == 200


def test_successful_logins_do_not_count_towards_the_limit(client, make_user):
    user = make_user()

    statuses = [login(client, user["email"]).status_code for _ in range(8)]

    assert statuses == [200] * 8


def test_blocking_a_user_ends_their_sessions(client, auth_headers, make_user):
    user = make_user()
    pair = sign_in(client, user["email"])

    client.patch(f"/api/v1/users/{user['id']}", json={"blocked": True}, headers=auth_headers)

    assert me(client, pair).status_code == 401
    assert refresh(client, pair).status_code == 401


def test_login_with_an_old_werkzeug_hash_works_and_upgrades_it_to_argon2id(app, client, make_user):
    user = make_user()
    with app.app_context():
        stored = db.session.get(User, user["id"])
        stored.password_hash = generate_password_hash("old password", method="pbkdf2:sha256:1000")
        db.session.commit()

    response = login(client, user["email"], "old password")

    assert response.status_code == 200
    with app.app_context():
        assert db.session.get(User, user["id"]).password_hash.startswith("$argon2id$")
    assert login(client, user["email"], "old password").status_code == 200


# POST /auth/refresh


def test_refresh_returns_a_new_pair_that_works(client, make_user):
    first = sign_in(client, make_user()["email"])

    response = refresh(client, first)

    assert response.status_code == 200
    second = response.json
    assert second["token_type"] == "Bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert me(client, second).status_code == 200
    assert refresh(client, second).status_code == 200


def test_reused_refresh_token_is_401_and_ends_the_whole_session(client, make_user):
    first = sign_in(client, make_user()["email"])
    second = refresh(client, first).json
    newest = refresh(client, second).json

    response = refresh(client, first)

    assert response.status_code == 401
    assert me(client, newest).status_code == 401
    assert refresh(client, newest).status_code == 401


def test_reused_refresh_token_leaves_other_sessions_alone(client, make_user):
    user = make_user()
    stolen, other = sign_in(client, user["email"]), sign_in(client, user["email"])
    refresh(client, stolen)

    refresh(client, stolen)

    assert me(client, other).status_code == 200
    assert refresh(client, other).status_code == 200


def test_refresh_with_an_access_token_is_401(client, make_user):
    pair = sign_in(client, make_user()["email"])

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]})

    assert response.status_code == 401
    assert me(client, pair).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        # A well-formed token signed with another key.
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxIiwicHVycG9zZSI6InJlZnJlc2giLCJleHAiOjQxMDI0NDQ4MDAsInNpZCI6MSwibiI6MH0."
        "c2lnbmVkIHdpdGggYW5vdGhlciBrZXk",
    ],
)
def test_refresh_with_garbage_is_401(client, make_user, token):
    sign_in(client, make_user()["email"])

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": token})

    assert response.status_code == 401
    assert response.json["message"].startswith("Invalid, expired or revoked refresh token")


def test_refresh_token_used_as_an_access_token_is_401(client, make_user):
    pair = sign_in(client, make_user()["email"])

    response = client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
    )

    assert response.status_code == 401


def test_refresh_after_the_user_was_deleted_is_401(client, auth_headers, make_user):
    user = make_user()
    pair = sign_in(client, user["email"])
    client.delete(f"/api/v1/users/{user['id']}", headers=auth_headers)

    response = refresh(client, pair)

    assert response.status_code == 401


# POST /auth/logout


def test_logout_is_204_and_ends_that_sessions_access_and_refresh_tokens(client, make_user):
    pair = sign_in(client, make_user()["email"])

    response = client.post("/api/v1/auth/logout", headers=bearer(pair))

    assert response.status_code == 204
    assert me(client, pair).status_code == 401
    assert refresh(client, pair).status_code == 401


def test_logout_keeps_the_users_other_sessions(client, make_user):
    user = make_user()
    leaving, staying = sign_in(client, user["email"]), sign_in(client, user["email"])

    client.post("/api/v1/auth/logout", headers=bearer(leaving))

    assert me(client, staying).status_code == 200
    assert refresh(client, staying).status_code == 200


# GET /me, PATCH /me


def test_get_me_returns_the_caller_with_their_role(client, make_member):
    user, headers = make_member("editor")

    response = client.get("/api/v1/me", headers=headers)

    assert response.status_code == 200
    assert response.json == user
    assert response.json["role"] == "editor"


def test_patch_me_changes_the_name_alone_without_the_password(client, make_member):
    user, headers = make_member()

    response = client.patch("/api/v1/me", json={"name": "New Name"}, headers=headers)

    assert response.status_code == 200
    assert response.json["name"] == "New Name"
    assert response.json["email"] == user["email"]


@pytest.mark.parametrize("change", [{"email": "new@example.com"}, {"password": NEW_PASSWORD}])
def test_patch_me_email_or_password_without_the_current_password_is_400(
    client, make_member, change
):
    _, headers = make_member()

    response = client.patch("/api/v1/me", json=change, headers=headers)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["current_password"]


@pytest.mark.parametrize("change", [{"email": "new@example.com"}, {"password": NEW_PASSWORD}])
def test_patch_me_email_or_password_with_a_wrong_current_password_is_400(
    client, make_member, change
):
    user, headers = make_member()

    response = client.patch(
        "/api/v1/me", json={**change, "current_password": WRONG_PASSWORD}, headers=headers
    )

    assert response.status_code == 400
    assert response.json["errors"] == {"current_password": "Wrong password."}
    assert client.get("/api/v1/me", headers=headers).json["email"] == user["email"]


def test_patch_me_email_with_the_current_password_is_200(client, make_member):
    _, headers = make_member()

    response = client.patch(
        "/api/v1/me",
        json={"email": "New@Example.com", "current_password": PASSWORD},
        headers=headers,
    )

    assert response.status_code == 200
    assert response.json["email"] == "new@example.com"
    assert login(client, "new@example.com").status_code == 200


def test_patch_me_email_taken_by_another_user_is_409(client, make_user, make_member):
    make_user(email="taken@example.com")
    _, headers = make_member()

    response = client.patch(
        "/api/v1/me",
        json={"email": "taken@example.com", "current_password": PASSWORD},
        headers=headers,
    )

    assert response.status_code == 409
    assert response.json["errors"] == {"email": "Already registered."}


def test_patch_me_password_with_the_current_password_is_200_without_it_in_the_body(
    client, make_user
):
    pair = sign_in(client, make_user()["email"])

    response = change_my_password(client, pair)

    assert response.status_code == 200
    assert NEW_PASSWORD not in response.get_data(as_text=True)
    assert PASSWORD not in response.get_data(as_text=True)


def test_patch_me_password_ends_every_other_session_and_keeps_this_one(client, make_user):
    user = make_user()
    this, other = sign_in(client, user["email"]), sign_in(client, user["email"])

    change_my_password(client, this)

    assert me(client, other).status_code == 401
    assert refresh(client, other).status_code == 401
    assert me(client, this).status_code == 200
    assert refresh(client, this).status_code == 200


def test_patch_me_password_then_the_new_one_signs_in_and_the_old_does_not(client, make_user):
    user = make_user()
    change_my_password(client, sign_in(client, user["email"]))

    new, old = login(client, user["email"], NEW_PASSWORD), login(client, user["email"])

    assert new.status_code == 200
    assert old.status_code == 401


@pytest.mark.parametrize("change", [{"role": "admin"}, {"blocked": False}])
def test_patch_me_role_or_blocked_is_400_as_an_unknown_field(client, make_member, change):
    user, headers = make_member()

    response = client.patch(
        "/api/v1/me", json={**change, "current_password": PASSWORD}, headers=headers
    )

    assert response.status_code == 400
    assert list(response.json["errors"]) == list(change)
    assert client.get("/api/v1/me", headers=headers).json["role"] == user["role"]


# GET /me/sessions, DELETE /me/sessions/<id>, DELETE /me/sessions


def test_list_my_sessions_shows_each_login_with_its_device_and_one_current(client, make_user):
    user = make_user()
    sign_in(client, user["email"], device="Ada's phone")
    pair = sign_in(client, user["email"], device="Ada's laptop")

    page = my_sessions(client, pair)

    assert (page["total"], page["limit"], page["offset"]) == (2, 20, 0)
    assert {session["device"] for session in page["items"]} == {"Ada's phone", "Ada's laptop"}
    [current] = [session for session in page["items"] if session["current"]]
    assert current["device"] == "Ada's laptop"
    for session in page["items"]:
        assert set(session) == {"id", "device", "created_at", "last_used_at", "current"}
        assert session["created_at"].endswith("+00:00")


def test_list_my_sessions_names_a_device_after_the_user_agent_by_default(client, make_user):
    user = make_user()
    response = client.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": PASSWORD},
        headers={"User-Agent": "ExampleBrowser/1.0"},
    )

    page = my_sessions(client, response.json)

    assert [session["device"] for session in page["items"]] == ["ExampleBrowser/1.0"]


def test_list_my_sessions_shows_only_the_callers_live_sessions(client, make_user):
    user, other = make_user(), make_user()
    ended = sign_in(client, user["email"])
    client.post("/api/v1/auth/logout", headers=bearer(ended))
    sign_in(client, other["email"])
    pair = sign_in(client, user["email"])

    page = my_sessions(client, pair)

    assert page["total"] == 1
    assert page["items"][0]["current"] is True


def test_delete_my_session_is_204_and_ends_it(client, make_user):
    user = make_user()
    lost = sign_in(client, user["email"], device="lost phone")
    pair = sign_in(client, user["email"])
    lost_id = current_session_id(client, lost)

    response = client.delete(f"/api/v1/me/sessions/{lost_id}", headers=bearer(pair))

    assert response.status_code == 204
    assert me(client, lost).status_code == 401
    assert refresh(client, lost).status_code == 401
    assert me(client, pair).status_code == 200
    assert lost_id not in [s["id"] for s in my_sessions(client, pair)["items"]]


def test_delete_another_users_session_is_404_and_leaves_it(client, make_user):
    theirs = sign_in(client, make_user()["email"])
    their_id = current_session_id(client, theirs)
    mine = sign_in(client, make_user()["email"])

    response = client.delete(f"/api/v1/me/sessions/{their_id}", headers=bearer(mine))

    assert response.status_code == 404
    assert me(client, theirs).status_code == 200


def test_delete_an_unknown_session_is_404(client, make_user):
    pair = sign_in(client, make_user()["email"])

    response = client.delete("/api/v1/me/sessions/999999", headers=bearer(pair))

    assert response.status_code == 404
    assert error_body(response) == {"message": "Session 999999 not found."}


def test_delete_my_sessions_is_204_and_ends_all_but_the_current_one(client, make_user):
    user = make_user()
    others = [sign_in(client, user["email"]) for _ in range(2)]
    pair = sign_in(client, user["email"])

    response = client.delete("/api/v1/me/sessions", headers=bearer(pair))

    assert response.status_code == 204
    assert [me(client, other).status_code for other in others] == [401, 401]
    assert me(client, pair).status_code == 200
    assert my_sessions(client, pair)["total"] == 1


# POST /auth/password-reset, POST /auth/password-reset/confirm


def test_password_reset_answers_202_with_the_same_body_for_known_and_unknown_emails(
    client, make_user
):
    user = make_user()

    known = request_reset(client, user["email"])
    unknown = request_reset(client, "nobody@example.com")

    assert known.status_code == unknown.status_code == 202
    assert known.json == unknown.json
    assert set(known.json) == {"message"}


def test_password_reset_mails_one_link_with_the_token_to_a_known_email(make_app, auth_headers):
    app = make_app(PASSWORD_RESET_URL="https://app.example.com/reset/{token}?from=mail")
    client = app.test_client()
    body = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    client.post("/api/v1/users", json=body, headers=auth_headers)
    flush()

    request_reset(client, "Ada@Example.com")

    flush()
    [message] = outbox(app)
    assert message["To"] == "ada@example.com"
    link = re.search(r"https://app\.example\.com/reset/(\S+)\?from=mail", message.get_content())
    assert link is not None
    assert confirm_reset(client, link.group(1)).status_code == 204


def test_sixth_password_reset_request_for_one_email_is_429_with_retry_after(client, make_user):
    user = make_user()
    for attempt in range(5):
        request_reset(client, user["email"], ip=f"10.0.0.{attempt}")

    response = request_reset(client, user["email"], ip="10.0.0.99")

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_password_reset_for_an_unknown_email_sends_nothing(app, client, make_user):
    make_user()
    flush()

    request_reset(client, "nobody@example.com")

    flush()
    assert outbox(app) == []


def test_confirm_reset_is_204_then_the_new_password_signs_in_and_the_old_does_not(
    app, client, make_user
):
    user = make_user()
    token = reset_token(app, client, user["email"])

    response = confirm_reset(client, token)

    assert response.status_code == 204
    assert login(client, user["email"], NEW_PASSWORD).status_code == 200
    assert login(client, user["email"]).status_code == 401


def test_confirm_reset_with_a_used_token_is_400(app, client, make_user):
    token = reset_token(app, client, make_user()["email"])
    confirm_reset(client, token)

    response = confirm_reset(client, token, "yet another password")

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["token"]


def test_confirm_reset_after_the_password_changed_on_me_is_400(app, client, make_user):
    user = make_user()
    token = reset_token(app, client, user["email"])
    change_my_password(client, sign_in(client, user["email"]))

    response = confirm_reset(client, token, "yet another password")

    assert response.status_code == 400
    assert login(client, user["email"], NEW_PASSWORD).status_code == 200


def test_confirm_reset_with_an_expired_token_is_400(app, client, make_user):
    user = make_user()
    with app.app_context():
        stored = db.session.get(User, user["id"])
        token = tokens.issue(tokens.PASSWORD_RESET, user["id"], -1, pwd=fingerprint(stored))

    response = confirm_reset(client, token)

    assert response.status_code == 400
    assert login(client, user["email"]).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_confirm_reset_with_a_garbage_token_is_400(client, token):
    response = confirm_reset(client, token)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["token"]


def test_confirm_reset_with_another_kind_of_token_is_400(client, make_user):
    pair = sign_in(client, make_user()["email"])

    response = confirm_reset(client, pair["access_token"])

    assert response.status_code == 400


@pytest.mark.parametrize("password", ["p" * 7, "p" * 129])
def test_confirm_reset_with_a_password_too_short_or_too_long_is_400(
    app, client, make_user, password
):
    user = make_user()
    token = reset_token(app, client, user["email"])

    response = confirm_reset(client, token, password)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["password"]
    assert confirm_reset(client, token).status_code == 204


def test_confirm_reset_ends_every_session_of_the_user(app, client, make_user):
    user = make_user()
    sessions = [sign_in(client, user["email"]) for _ in range(2)]
    token = reset_token(app, client, user["email"])

    confirm_reset(client, token)

    assert [me(client, pair).status_code for pair in sessions] == [401, 401]
    assert [refresh(client, pair).status_code for pair in sessions] == [401, 401]


def test_password_reset_with_the_mail_server_down_is_still_202(make_app, auth_headers, monkeypatch):
    monkeypatch.setattr(sending, "RETRY_DELAY", 0)
    app = make_app(MAIL_URL="smtp://127.0.0.1:1", MAIL_TIMEOUT=1)
    client = app.test_client()
    body = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    client.post("/api/v1/users", json=body, headers=auth_headers)

    response = request_reset(client, "ada@example.com")

    flush()
    assert response.status_code == 202
    assert set(response.json) == {"message"}


# Timing: an answer must not tell which emails have an account

ARGON2_COST = {"ARGON2_TIME_COST": 2, "ARGON2_MEMORY_COST": 19 * 1024}
NO_LIMIT = {"LOGIN_ATTEMPTS_PER_EMAIL": 10_000, "LOGIN_ATTEMPTS_PER_IP": 10_000}
ROUNDS = 15
# A login hides behind a password hash (tens of milliseconds): the loose band shows a
# skipped verification. A reset request has no hash and answers in a few milliseconds:
# a band as loose would miss a millisecond of work done for known emails only.
LOGIN_BAND = (0.67, 1.5)
RESET_BAND = (0.85, 1 / 0.85)
RESET_ROUNDS = 25


def median_seconds_alternating(first, second, rounds=ROUNDS):
    """Median time of each request, sent in turn, after one warm-up each."""
    first(), second()
    times = ([], [])
    for _ in range(rounds):
        for send, spent in zip((first, second), times, strict=True):
            started = time.perf_counter()
            send()
            spent.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


@pytest.fixture
def costly_client(make_app, auth_headers):
    """A client of an app that hashes at the production cost, with a known user."""
    client = make_app(**ARGON2_COST, **NO_LIMIT).test_client()
    body = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    assert client.post("/api/v1/users", json=body, headers=auth_headers).status_code == 201
    return client


def test_login_takes_as_long_for_an_unknown_email_as_for_a_wrong_password(costly_client):
    def unknown():
        assert login(costly_client, "nobody@example.com", WRONG_PASSWORD).status_code == 401

    def known():
        assert login(costly_client, "ada@example.com", WRONG_PASSWORD).status_code == 401

    unknown_time, known_time = median_seconds_alternating(unknown, known)

    assert LOGIN_BAND[0] < unknown_time / known_time < LOGIN_BAND[1], (unknown_time, known_time)


def test_login_for_an_unknown_email_costs_a_password_hash_verification(costly_client):
    def unknown_login():
        assert login(costly_client, "nobody@example.com", WRONG_PASSWORD).status_code == 401

    def same_work_without_hashing():
        assert request_reset(costly_client, "nobody@example.com").status_code == 202

    login_time, baseline_time = median_seconds_alternating(unknown_login, same_work_without_hashing)

    assert login_time > 2 * baseline_time, (login_time, baseline_time)


def test_password_reset_takes_as_long_for_an_unknown_email_as_for_a_known_one(costly_client):
    def unknown():
        assert request_reset(costly_client, "nobody@example.com").status_code == 202

    def known():
        assert request_reset(costly_client, "ada@example.com").status_code == 202

    unknown_time, known_time = median_seconds_alternating(unknown, known, RESET_ROUNDS)
    flush()

    assert RESET_BAND[0] < unknown_time / known_time < RESET_BAND[1], (unknown_time, known_time)


# flask users create


def create_user_command(app, email, *options, password="a long password"):
    return app.test_cli_runner().invoke(
        args=["users", "create", email, *options, "--password-stdin"], input=f"{password}\n"
    )


def test_cli_creates_an_admin_who_signs_in_and_lists_users(app, client):
    result = create_user_command(app, "root@example.com", "--role", "admin")

    assert result.exit_code == 0, result.output
    pair = sign_in(client, "root@example.com", "a long password")
    assert me(client, pair).json["role"] == "admin"
    response = client.get("/api/v1/users", headers=bearer(pair))
    assert response.status_code == 200
    assert [user["email"] for user in response.json["items"]] == ["root@example.com"]


def test_cli_refuses_a_duplicate_email(app, make_user):
    make_user(email="ada@example.com")

    result = create_user_command(app, "ADA@example.com", "--role", "admin")

    assert result.exit_code != 0
    assert "already exists" in result.output


def test_cli_refuses_a_short_password(app, client):
    result = create_user_command(app, "root@example.com", password="short")

    assert result.exit_code != 0
    assert "password" in result.output
    assert login(client, "root@example.com", "short").status_code == 401


def test_cli_refuses_an_unknown_role(app, client):
    result = create_user_command(app, "root@example.com", "--role", "superuser")

    assert result.exit_code != 0
    assert "role" in result.output
    assert login(client, "root@example.com", "a long password").status_code == 401


# Scheduled clean-up of sessions


def test_prune_sessions_deletes_revoked_and_expired_sessions_and_keeps_live_ones(
    app, client, make_user
):
    user = make_user()
    live, revoked, expired = (sign_in(client, user["email"]) for _ in range(3))
    client.post("/api/v1/auth/logout", headers=bearer(revoked))
    live_id, expired_id = current_session_id(client, live), current_session_id(client, expired)
    with app.app_context():
        db.session.get(LoginSession, expired_id).expires_at = datetime.now(UTC) - timedelta(1)
        db.session.commit()

        prune_sessions()

        assert list(db.session.scalars(select(LoginSession.id))) == [live_id]
    assert me(client, live).status_code == 200


# The audit trail

AUDIT_IP = "203.0.113.7"
AUDIT_AGENT = "audit-test-agent/1.0"


def security_events(app, client, user):
    """Fails a login, signs in, reuses a refresh token, changes the password, logs out
    and resets the password; returns every password and token used."""
    client.environ_base.update({"REMOTE_ADDR": AUDIT_IP, "HTTP_USER_AGENT": AUDIT_AGENT})
    assert login(client, user["email"], WRONG_PASSWORD).status_code == 401
    first = sign_in(client, user["email"])
    second = sign_in(client, user["email"])
    renewed = refresh(client, second).json
    assert refresh(client, second).status_code == 401
    assert change_my_password(client, first).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=bearer(first)).status_code == 204
    token = reset_token(app, client, user["email"])
    assert confirm_reset(client, token, "the reset password").status_code == 204
    secrets = [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, "the reset password", token]
    for pair in (first, second, renewed):
        secrets += [pair["access_token"], pair["refresh_token"]]
    return secrets


def all_audit_rows(app):
    with app.app_context():
        return [
            {column.name: getattr(event, column.name) for column in AuditEvent.__table__.columns}
            for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_audit_trail_records_each_security_event_with_ip_and_user_agent(app, client, make_user):
    user = make_user()

    security_events(app, client, user)

    rows = all_audit_rows(app)
    actions = {row["action"] for row in rows}
    for action in [
        "login_failed",
        "login_succeeded",
        "refresh_reused",
        "password_changed",
        "logout",
        "password_reset_requested",
        "password_reset",
    ]:
        assert action in actions
        for row in (row for row in rows if row["action"] == action):
            assert row["user_id"] == user["id"]
            assert row["ip"] == AUDIT_IP
            assert row["user_agent"] == AUDIT_AGENT


def test_audit_trail_never_holds_a_password_or_a_token(app, client, make_user):
    user = make_user()

    secrets = security_events(app, client, user)

    rows = all_audit_rows(app)
    assert len(rows) > 7
    for row in rows:
        for value in row.values():
            for secret in secrets:
                assert secret not in str(value), (row, secret)


def test_list_audit_events_filters_by_user_and_action_newest_first(client, auth_headers, make_user):
    user, other = make_user(), make_user()
    for _ in range(3):
        sign_in(client, user["email"])
    sign_in(client, other["email"])

    response = client.get(
        "/api/v1/audit-events",
        query_string={"user_id": user["id"], "action": "login_succeeded"},
        headers=auth_headers,
    )

    assert response.status_code == 200
    events = response.json["items"]
    assert response.json["total"] == 3
    assert {(event["user_id"], event["action"]) for event in events} == {
        (user["id"], "login_succeeded")
    }
    assert [event["id"] for event in events] == sorted((e["id"] for e in events), reverse=True)
    assert [e["created_at"] for e in events] == sorted(
        (e["created_at"] for e in events), reverse=True
    )


def test_list_audit_events_filters_by_time_since_included_until_excluded(app, client, auth_headers):
    days = [datetime(2030, 1, day, tzinfo=UTC) for day in (1, 2, 3, 4)]
    with app.app_context():
        db.session.add_all(AuditEvent(action="test_event", created_at=day) for day in days)
        db.session.commit()

    response = client.get(
        "/api/v1/audit-events",
        query_string={"since": days[1].isoformat(), "until": days[3].isoformat()},
        headers=auth_headers,
    )

    assert response.status_code == 200
    assert [event["created_at"] for event in response.json["items"]] == [
        days[2].isoformat(),
        days[1].isoformat(),
    ]


def test_list_audit_events_with_a_plain_users_token_is_403(client, make_member):
    _, headers = make_member("user")

    response = client.get("/api/v1/audit-events", headers=headers)

    assert response.status_code == 403
    assert response.json["missing_scope"] == "audit:read"


def test_list_audit_events_with_an_admins_token_is_200(client, make_member):
    _, headers = make_member("admin")

    response = client.get("/api/v1/audit-events", headers=headers)

    assert response.status_code == 200


def test_prune_audit_events_deletes_only_rows_older_than_the_given_days(app):
    now = datetime.now(UTC)
    with app.app_context():
        for age in (100, 91, 89, 0):
            db.session.add(AuditEvent(action=f"{age}_days_old", created_at=now - timedelta(age)))
        db.session.commit()

        prune_audit_events(days=90)

        kept = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id))
        assert list(kept) == ["89_days_old", "0_days_old"]


# Ids are never handed out again (SQLite reuses the highest deleted rowid otherwise)


def test_a_logged_out_token_stays_refused_after_its_session_is_pruned_and_another_begins(
    app, client, make_user
):
    user = make_user()
    old = sign_in(client, user["email"])
    client.post("/api/v1/auth/logout", headers=bearer(old))
    with app.app_context():
        prune_sessions()

    sign_in(client, user["email"])

    assert me(client, old).status_code == 401
    assert refresh(client, old).status_code == 401


def test_a_deleted_users_token_does_not_open_the_next_users_account(
    client, make_user, auth_headers
):
    gone = make_user(email="gone@example.com")
    old = sign_in(client, "gone@example.com")
    client.delete(f"/api/v1/users/{gone['id']}", headers=auth_headers)

    newcomer = make_user(email="new@example.com")
    sign_in(client, "new@example.com")

    assert newcomer["id"] != gone["id"]
    assert me(client, old).status_code == 401
    assert refresh(client, old).status_code == 401
