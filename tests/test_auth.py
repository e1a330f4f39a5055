"""API keys on every API route, and CORS for browsers."""

import pytest

from tests.conftest import AUTH_KEY, REPORTING_KEY

# Every API route, with a body that passes validation where one is needed.
API_ROUTES = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"email": "a@example.com", "name": "A", "password": "12345678"}),
    ("GET", "/api/v1/users/1", None),
    ("PATCH", "/api/v1/users/1", {"name": "B"}),
    ("DELETE", "/api/v1/users/1", None),
    ("GET", "/api/v1/users/1/items", None),
    ("GET", "/api/v1/items", None),
    ("POST", "/api/v1/items", {"title": "T", "owner_id": 1}),
    ("GET", "/api/v1/items/1", None),
    ("PATCH", "/api/v1/items/1", {"title": "U"}),
    ("DELETE", "/api/v1/items/1", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in API_ROUTES]


def test_the_route_list_above_covers_every_api_route(app):
    routes = {
        (method, rule.rule.replace("<id:user_id>", "1").replace("<id:item_id>", "1"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api/v1.") and rule.endpoint != "api/v1.get_swagger"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, path) for method, path, _ in API_ROUTES}


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_missing_key_is_401(client, method, path, body):
    response = client.open(path, method=method, json=body)

    assert response.status_code == 401
    assert response.json == {"message": "Missing API key: send it in the X-AUTH-API-KEY header."}


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_wrong_key_is_401(client, method, path, body):
    response = client.open(path, method=method, json=body, headers={"X-AUTH-API-KEY": "nope"})

    assert response.status_code == 401
    assert response.json == {"message": "Invalid API key."}


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("key_fixture", ["default", "reporting"])
def test_any_configured_client_key_opens_every_route(
    client, auth_headers, make_item, method, path, body, key_fixture
):
    make_item()  # user 1 and item 1 exist
    headers = auth_headers if key_fixture == "default" else {"X-AUTH-API-KEY": REPORTING_KEY}
    response = client.open(path, method=method, json=body, headers=headers)

    assert response.status_code in {200, 201, 204}


@pytest.mark.parametrize("key", ["clé-secrète", "x" * 5000, " "])
def test_odd_keys_are_401_not_500(client, key):
    # Werkzeug decodes header bytes as latin-1, so a UTF-8 key arrives as non-ASCII text.
    headers = {"X-AUTH-API-KEY": key.encode().decode("latin-1")}
    assert client.get("/api/v1/users", headers=headers).status_code == 401


def test_auth_header_name_comes_from_config(make_app):
    client = make_app(AUTH_HEADER="X-Api-Key").test_client()

    assert client.get("/api/v1/users", headers={"X-AUTH-API-KEY": AUTH_KEY}).status_code == 401
    assert client.get("/api/v1/users", headers={"X-Api-Key": AUTH_KEY}).status_code == 200


def test_cors_preflight_from_allowed_origin_needs_no_key(client):
    response = client.options(
        "/api/v1/users",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-AUTH-API-KEY, Content-Type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "x-auth-api-key" in allowed and "content-type" in allowed


def test_cors_answers_allowed_origin_on_real_requests(client, auth_headers):
    response = client.get(
        "/api/v1/users", headers={**auth_headers, "Origin": "https://app.example.com"}
    )

    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_cors_gives_other_origins_nothing(client, auth_headers):
    preflight = client.options(
        "/api/v1/users",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    response = client.get(
        "/api/v1/users", headers={**auth_headers, "Origin": "https://evil.example"}
    )

    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in response.headers
