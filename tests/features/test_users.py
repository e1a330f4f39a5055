"""The /users endpoints: each endpoint with each status it can answer."""

import pytest

from backend.extensions import db
from backend.features.users.models import User


def test_create_user_returns_201_with_location_and_no_password(client, auth_headers):
    body = {"email": "Ada@Example.com", "name": "Ada", "password": "analytical"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 201
    user = response.json
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada"
    assert "password" not in user and "password_hash" not in user
    assert user["created_at"].endswith("+00:00")


def test_created_user_password_is_stored_hashed(app, make_user):
    user_id = make_user(password="analytical")["id"]
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.password_hash != "analytical"
        assert user.check_password("analytical")
        assert not user.check_password("wrong password")


def test_create_user_with_duplicate_email_in_other_case_is_409(client, auth_headers, make_user):
    make_user(email="ada@example.com")
    body = {"email": "ADA@example.com", "name": "Other", "password": "analytical"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 409
    assert response.json["errors"] == {"email": "Already registered."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Ada", "password": "analytical"}, "email"),
        ({"email": "not-an-email", "name": "Ada", "password": "analytical"}, "email"),
        ({"email": "a@example.com" + "m" * 250, "name": "Ada", "password": "analytical"}, "email"),
        ({"email": "a@example.com", "name": "", "password": "analytical"}, "name"),
        ({"email": "a@example.com", "name": "n" * 101, "password": "analytical"}, "name"),
        ({"email": "a@example.com", "name": "Ada", "password": "short"}, "password"),
        ({"email": "a@example.com", "name": "Ada", "password": "p" * 129}, "password"),
        ({"email": "a@example.com", "name": "Ada", "password": 12345678}, "password"),
        ({"email": "a@example.com", "name": None, "password": "analytical"}, "name"),
        ({"email": "a@example.com", "name": "Ada", "password": "analytical", "id": 7}, "id"),
    ],
)
def test_create_user_with_invalid_field_is_400_naming_it(client, auth_headers, body, field):
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert response.json["message"] == "JSON body parameters are invalid."
    assert list(response.json["errors"]) == [field]


def test_invalid_password_is_not_echoed(client, auth_headers):
    body = {"email": "a@example.com", "name": "Ada", "password": "secret1"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert "secret1" not in response.get_data(as_text=True)


def test_list_users_pages_in_creation_order(client, auth_headers, make_user):
    ids = [make_user()["id"] for _ in range(3)]
    response = client.get("/api/v1/users?limit=2&offset=1", headers=auth_headers)

    assert response.status_code == 200
    assert response.json["total"] == 3
    assert response.json["limit"] == 2
    assert response.json["offset"] == 1
    assert [user["id"] for user in response.json["items"]] == ids[1:]


def test_list_users_defaults_to_first_20_and_ignores_unknown_parameters(
    client, auth_headers, make_user
):
    make_user()
    response = client.get("/api/v1/users?colour=blue", headers=auth_headers)

    assert response.status_code == 200
    assert (response.json["limit"], response.json["offset"], response.json["total"]) == (20, 0, 1)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "offset=-1",
        "offset=99999999999999",
        # Numbers are plain ASCII digits: not what Python's int() also reads.
        "limit=1_0",
        "limit=%D9%A1",
        "limit=+5",
        "limit=%205",
        "offset=0x1",
    ],
)
def test_list_users_with_bad_paging_is_400(client, auth_headers, query):
    response = client.get(f"/api/v1/users?{query}", headers=auth_headers)

    assert response.status_code == 400
    assert set(response.json["errors"]) <= {"limit", "offset"}


def test_get_user(client, auth_headers, make_user):
    user = make_user()
    response = client.get(f"/api/v1/users/{user['id']}", headers=auth_headers)

    assert response.status_code == 200
    assert response.json == user


@pytest.mark.parametrize("user_id", ["999", "99999999999999999999", "0", "abc"])
def test_get_unknown_user_is_404(client, auth_headers, user_id):
    response = client.get(f"/api/v1/users/{user_id}", headers=auth_headers)

    assert response.status_code == 404
    assert "message" in response.json


def test_update_user_changes_only_given_fields(client, auth_headers, make_user):
    user = make_user(name="Ada")
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"name": "Ada L."}, headers=auth_headers
    )

    assert response.status_code == 200
    assert response.json["name"] == "Ada L."
    assert response.json["email"] == user["email"]


def test_update_user_password_rehashes(app, client, auth_headers, make_user):
    user = make_user(password="first password")
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"password": "second password"}, headers=auth_headers
    )

    assert response.status_code == 200
    assert "password" not in response.json
    with app.app_context():
        assert db.session.get(User, user["id"]).check_password("second password")


def test_update_user_email_to_own_address_in_other_case_is_allowed(client, auth_headers, make_user):
    user = make_user(email="ada@example.com")
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"email": "ADA@example.com"}, headers=auth_headers
    )

    assert response.status_code == 200
    assert response.json["email"] == "ada@example.com"


def test_update_user_email_to_taken_address_is_409_and_keeps_data(client, auth_headers, make_user):
    make_user(email="taken@example.com")
    user = make_user(email="mine@example.com")
    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"email": "taken@example.com"}, headers=auth_headers
    )

    assert response.status_code == 409
    assert client.get(f"/api/v1/users/{user['id']}", headers=auth_headers).json == user


def test_update_user_with_invalid_field_is_400(client, auth_headers, make_user):
    user = make_user()
    response = client.patch(f"/api/v1/users/{user['id']}", json={"name": ""}, headers=auth_headers)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["name"]


def test_update_unknown_user_is_404(client, auth_headers):
    response = client.patch("/api/v1/users/999", json={"name": "X"}, headers=auth_headers)

    assert response.status_code == 404


def test_delete_user_is_204_then_404(client, auth_headers, make_user):
    user = make_user()
    response = client.delete(f"/api/v1/users/{user['id']}", headers=auth_headers)

    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/api/v1/users/{user['id']}", headers=auth_headers).status_code == 404


def test_delete_unknown_user_is_404(client, auth_headers):
    assert client.delete("/api/v1/users/999", headers=auth_headers).status_code == 404
