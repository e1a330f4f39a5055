"""Every error is JSON {"message": ...} with the right status; nothing stored is harmed."""

import logging
import time

import pytest
from flask_rebar import errors

from backend.features.users import service as user_service
from tests.conftest import error_body


def test_unknown_route_is_404_json(client):
    response = client.get("/nowhere")

    assert response.status_code == 404
    assert response.is_json and "message" in response.json


def test_wrong_method_is_405_json(client, auth_headers):
    response = client.put("/api/v1/users", headers=auth_headers)

    assert response.status_code == 405
    assert response.is_json and "message" in response.json


def test_body_over_max_content_length_is_413_json(client, auth_headers):
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/users", data=body, content_type="application/json", headers=auth_headers
    )

    assert response.status_code == 413
    assert response.is_json and "message" in response.json


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        ("{not json", "application/json", "Failed to decode JSON body."),
        ('"a string"', "application/json", "Failed to decode JSON body."),
        ("", "application/json", "Fields must be in JSON body."),
        ("name=Ada", "application/x-www-form-urlencoded", "Only payloads with 'content-type'"),
        ('{"name": "Ada"}', "text/plain", "Only payloads with 'content-type'"),
    ],
)
def test_unusable_body_is_400_json(client, auth_headers, data, content_type, message):
    response = client.post(
        "/api/v1/users", data=data, content_type=content_type, headers=auth_headers
    )

    assert response.status_code == 400
    assert response.json["message"].startswith(message)


def test_json_array_body_is_400_json(client, auth_headers):
    response = client.post("/api/v1/users", json=[{"name": "Ada"}], headers=auth_headers)

    assert response.status_code == 400
    assert response.json["errors"] == {"_general": "Invalid input type."}


def test_unique_constraint_race_is_409_and_keeps_the_first(
    client, auth_headers, make_user, monkeypatch
):
    # Two requests can both pass the friendly check; the database constraint decides.
    first = make_user(email="ada@example.com")
    monkeypatch.setattr(user_service, "ensure_email_free", lambda email: None)
    body = {"email": "ada@example.com", "name": "Second", "password": "12345678"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 409
    assert error_body(response) == {"message": "The request conflicts with data already stored."}
    listed = client.get("/api/v1/users", headers=auth_headers).json
    assert listed["items"] == [first]


@pytest.mark.parametrize(
    "database_uri",
    [
        "postgresql://postgres@127.0.0.1:1/unreachable",
        "sqlite:////nonexistent-directory/backend.db",
    ],
)
def test_unreachable_database_is_503_json_within_seconds(make_app, database_uri, caplog):
    app = make_app(SQLALCHEMY_DATABASE_URI=database_uri)
    client = app.test_client()
    headers = {app.config["AUTH_HEADER"]: app.config["AUTH_KEY"]}

    started = time.monotonic()
    response = client.get("/api/v1/users", headers=headers)

    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert error_body(response) == {"message": "The database is unavailable; try again shortly."}
    [record] = [r for r in caplog.records if r.getMessage().startswith("Database unavailable")]
    assert record.exc_info is None


def test_custom_error_message_with_extra_data(app, client):
    def forbidden() -> None:
        raise errors.Forbidden("You can't do that!", {"reason": "missing credentials"})

    app.add_url_rule("/forbidden", view_func=forbidden)
    response = client.get("/forbidden")

    assert response.status_code == 403
    assert error_body(response) == {
        "message": "You can't do that!",
        "reason": "missing credentials",
    }


def test_unexpected_exception_is_500_json_with_traceback_only_in_log(app, client, caplog):
    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", view_func=broken)
    with caplog.at_level(logging.ERROR):
        response = client.get("/broken")

    assert response.status_code == 500
    assert error_body(response) == {"message": "Internal Server Error"}
    assert "secret internals" not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is RuntimeError
