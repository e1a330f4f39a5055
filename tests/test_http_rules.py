"""Hostile input gets a clear JSON 4xx, never a 500, and the answers stay small and JSON."""

import io
import json

import pytest
from marshmallow import fields

from tests.conftest import api_operations, error_body

NUL_AND_SURROGATE = ["a\x00b", "a\ud800b"]


# Every string field of every request body schema, from the registry.
STRING_FIELDS = [
    (operation.method, operation.url, name, operation.users_only)
    for operation in api_operations()
    if operation.definition.request_body_schema is not None
    for name, field in operation.definition.request_body_schema.fields.items()
    if isinstance(field, fields.String)
]


@pytest.mark.parametrize(
    ("method", "url", "name", "users_only"),
    STRING_FIELDS,
    ids=[" ".join(field[:3]) for field in STRING_FIELDS],
)
@pytest.mark.parametrize("bad", NUL_AND_SURROGATE, ids=["NUL", "lone surrogate"])
def test_unstorable_strings_are_400_naming_the_field_in_every_schema(
    client, auth_headers, make_member, method, url, name, users_only, bad
):
    headers = make_member()[1] if users_only else auth_headers
    # The body is checked before the handler looks for the row: id 1 need not exist.
    response = client.open(url, method=method, json={name: bad}, headers=headers)

    assert response.status_code == 400
    assert list(response.json["errors"]) == [name]
    assert "cannot be stored" in response.json["errors"][name]


def test_unstorable_strings_nested_or_in_keys_are_named_too(client, auth_headers):
    body = {"name": "ok", "tags": [{"label": "x\x00"}], "k\ud800": 1}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert set(response.json["errors"]) == {"tags", "k?"}
    assert set(response.json["errors"]["tags"]["0"]) == {"label"}


def test_nul_in_a_query_value_is_400(client, auth_headers):
    response = client.get("/api/v1/users?limit=1&q=a%00b", headers=auth_headers)

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["q"]


@pytest.mark.parametrize("depth", [33, 500, 100_000])
def test_deeply_nested_json_is_400(client, auth_headers, depth):
    body = "[" * depth + "]" * depth
    response = client.post(
        "/api/v1/users", data=body, content_type="application/json", headers=auth_headers
    )

    assert response.status_code == 400
    assert error_body(response) == {"message": "The JSON body is nested more than 32 levels deep."}


def test_json_nested_within_the_limit_is_validated_as_usual(client, auth_headers):
    nested: object = "deep"
    for _ in range(30):
        nested = [nested]
    response = client.post("/api/v1/users", json={"name": nested}, headers=auth_headers)

    assert response.status_code == 400
    assert response.json["errors"]["name"] == "Not a valid string."


def test_error_bodies_stay_small_however_many_unknown_fields(client, auth_headers):
    body = {f"{n}-unknown-{'x' * 500}": n for n in range(1500)}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert len(response.get_data()) < 10_000
    errors = response.json["errors"]
    assert len(errors) == 21 and errors["..."].endswith("more errors not shown.")
    assert all(len(name) <= 200 for name in errors)


@pytest.mark.parametrize(
    "path", ["/api/v1/users/%D9%A1", "/api/v1/users/1_0", "/api/v1/users/%EF%BC%91"]
)
def test_ids_in_paths_are_ascii_digits_only(client, auth_headers, make_user, path):
    make_user()
    response = client.get(path, headers=auth_headers)

    assert response.status_code == 404
    assert response.is_json


def test_email_is_validated_after_lowercasing(client, auth_headers):
    # "İ" lowercases to two characters: 142 before, 272 after, over the 254 limit.
    email = "İ" * 130 + "@example.com"
    body = {"email": email, "name": "Ada", "password": "correct horse"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert "email" in response.json["errors"]


@pytest.mark.parametrize(
    "email",
    [
        "ada@exa\u202emple.com",
        "ada@ex\u200bample.com",
        "ada@example.com\u202e",
        "ada@exam\u00adple.com",
        '"a\x01b"@example.com',
        "a b@example.com",
    ],
)
def test_email_refuses_characters_no_address_has(client, auth_headers, email):
    body = {"email": email, "name": "Ada", "password": "correct horse"}
    response = client.post("/api/v1/users", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert response.json["errors"] == {"email": "Not a valid email address."}


def chunked_post(client, auth_headers, stream: io.BytesIO):
    """A body without Content-Length, as a server passes on a chunked one."""
    headers = {**auth_headers, "Content-Type": "application/json"}
    environ = {"wsgi.input": stream, "wsgi.input_terminated": True}
    return client.post("/api/v1/users", headers=headers, environ_overrides=environ)


def test_chunked_body_over_the_limit_is_413(app, client, auth_headers):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"name": "x" * limit}).encode()
    response = chunked_post(client, auth_headers, io.BytesIO(body))

    assert response.status_code == 413
    assert response.is_json


def test_chunked_body_of_exactly_the_limit_is_read(app, client, auth_headers):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = {"email": "ada@example.com", "name": "Ada", "password": "correct horse"}
    text = json.dumps(body).encode()
    text += b" " * (limit - len(text))
    response = chunked_post(client, auth_headers, io.BytesIO(text))

    assert response.status_code == 201, response.json


class InvalidChunkSizeError(Exception):
    """Like gunicorn's, which derives from Exception alone."""


class BrokenStream(io.RawIOBase):
    """What gunicorn's reader does on malformed chunk sizes: raise its own error type."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        raise InvalidChunkSizeError("Invalid chunk size: b'zz'")


def test_a_body_that_cannot_be_read_is_400(client, auth_headers):
    response = chunked_post(client, auth_headers, io.BufferedReader(BrokenStream()))

    assert response.status_code == 400
    assert error_body(response) == {"message": "The request body could not be read."}


@pytest.mark.parametrize("path", ["/api//v1/users", "//api/v1/users", "/api/v1//users/1"])
def test_doubled_slashes_are_404_not_a_redirect(client, auth_headers, make_user, path):
    make_user()
    response = client.get(path, headers={**auth_headers, "Host": "evil.example"})

    assert response.status_code == 404
    assert response.is_json
    assert "Location" not in response.headers


@pytest.mark.parametrize("path", ["/api/v1/users/", "/health/"])
def test_a_trailing_slash_is_answered_not_redirected(client, auth_headers, path):
    response = client.get(path, headers={**auth_headers, "Host": "evil.example"})

    assert response.status_code == 200
    assert response.is_json
    assert "Location" not in response.headers


def test_options_is_204_with_allow_and_no_content_type(client):
    response = client.options("/api/v1/users")

    assert response.status_code == 204
    assert set(response.allow) >= {"GET", "POST"}
    assert "Content-Type" not in response.headers


def test_answers_without_a_body_claim_no_content_type(client, auth_headers, make_user):
    response = client.delete(f"/api/v1/users/{make_user()['id']}", headers=auth_headers)

    assert response.status_code == 204
    assert "Content-Type" not in response.headers
