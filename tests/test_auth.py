"""API keys and scopes on every API route, the development switch, and CORS."""

import logging

import pytest

from backend.auth import ApiKeyAuthenticator
from tests.conftest import AUTH_KEY, NO_SCOPES_KEY, PRODUCTION, REPORTING_KEY

# Every API route with the scope it needs, and a body that passes validation.
API_ROUTES = [
    ("GET", "/api/v1/users", "users:read", None),
    (
        "POST",
        "/api/v1/users",
        "users:write",
        {"email": "new@example.com", "name": "A", "password": "12345678"},
    ),
    ("GET", "/api/v1/users/1", "users:read", None),
    ("PATCH", "/api/v1/users/1", "users:write", {"name": "B"}),
    ("DELETE", "/api/v1/users/1", "users:write", None),
    ("GET", "/api/v1/users/1/items", "items:read", None),
    ("GET", "/api/v1/items", "items:read", None),
    ("GET", "/api/v1/items/stats", "items:read", None),
    ("POST", "/api/v1/items", "items:write", {"title": "T", "owner_id": 1}),
    ("GET", "/api/v1/items/1", "items:read", None),
    ("PATCH", "/api/v1/items/1", "items:write", {"title": "U"}),
    ("DELETE", "/api/v1/items/1", "items:write", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _, _ in API_ROUTES]


def test_the_route_list_above_is_every_api_route_with_its_scope(app):
    declared = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not rule.endpoint.startswith("api/v1."):
            continue
        path = rule.rule.replace("<id:user_id>", "1").replace("<id:item_id>", "1")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            declared[(method, path)] = view
    assert set(declared) == {(method, path) for method, path, _, _ in API_ROUTES}

    registry = next(iter(app.extensions["rebar"]["handler_registries"]))
    scopes = {
        (method.upper(), path.replace("<id:user_id>", "1").replace("<id:item_id>", "1")): [
            a.scope for a in definition.authenticators if isinstance(a, ApiKeyAuthenticator)
        ]
        for path, methods in registry.paths.items()
        for method, definition in methods.items()
    }
    assert scopes == {(method, path): [scope] for method, path, scope, _ in API_ROUTES}


@pytest.mark.parametrize(("method", "path", "scope", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_missing_key_is_401(client, method, path, scope, body):
    response = client.open(path, method=method, json=body)

    assert response.status_code == 401
    assert response.json == {"message": "Missing API key: send it in the X-AUTH-API-KEY header."}


@pytest.mark.parametrize(("method", "path", "scope", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_wrong_key_is_401(client, method, path, scope, body):
    response = client.open(path, method=method, json=body, headers={"X-AUTH-API-KEY": "nope"})

    assert response.status_code == 401
    assert response.json == {"message": "Invalid API key."}


@pytest.mark.parametrize(("method", "path", "scope", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_key_without_the_scope_is_403_naming_it(client, make_item, method, path, scope, body):
    make_item()
    response = client.open(
        path, method=method, json=body, headers={"X-AUTH-API-KEY": NO_SCOPES_KEY}
    )

    assert response.status_code == 403
    assert response.json == {
        "message": f"This API key lacks the scope {scope}.",
        "missing_scope": scope,
    }


@pytest.mark.parametrize(("method", "path", "scope", "body"), API_ROUTES, ids=ROUTE_IDS)
def test_key_with_just_that_scope_is_let_through(make_app, method, path, scope, body):
    app = make_app(API_CLIENTS={"exact": {"key": "exact-key", "scopes": [scope]}})
    client = app.test_client()
    owner = client.post(
        "/api/v1/users",
        json={"email": "owner@example.com", "name": "Owner", "password": "12345678"},
        headers={"X-AUTH-API-KEY": AUTH_KEY},
    ).json
    client.post(
        "/api/v1/items",
        json={"title": "Item", "owner_id": owner["id"]},
        headers={"X-AUTH-API-KEY": AUTH_KEY},
    )
    response = client.open(path, method=method, json=body, headers={"X-AUTH-API-KEY": "exact-key"})

    assert response.status_code in {200, 201, 204}


def test_read_only_client_reads_but_cannot_write(client, auth_headers):
    reporting = {"X-AUTH-API-KEY": REPORTING_KEY}

    assert client.get("/api/v1/users", headers=reporting).status_code == 200
    assert client.get("/api/v1/items", headers=reporting).status_code == 200
    response = client.post("/api/v1/items", json={"title": "T", "owner_id": 1}, headers=reporting)
    assert response.status_code == 403


@pytest.mark.parametrize("key", ["clé-secrète", "x" * 5000, " "])
def test_odd_keys_are_401_not_500(client, key):
    # Werkzeug decodes header bytes as latin-1, so a UTF-8 key arrives as non-ASCII text.
    headers = {"X-AUTH-API-KEY": key.encode().decode("latin-1")}
    assert client.get("/api/v1/users", headers=headers).status_code == 401


def test_auth_header_name_comes_from_config(make_app):
    client = make_app(AUTH_HEADER="X-Api-Key").test_client()

    assert client.get("/api/v1/users", headers={"X-AUTH-API-KEY": AUTH_KEY}).status_code == 401
    assert client.get("/api/v1/users", headers={"X-Api-Key": AUTH_KEY}).status_code == 200


def test_unknown_scope_in_config_is_refused(make_app):
    from backend.config_loading import ConfigError

    with pytest.raises(
        ConfigError, match=r"API_CLIENTS\['typo'\] has unknown scopes \['user:read'\]"
    ):
        make_app(API_CLIENTS={"typo": {"key": "k", "scopes": ["user:read"]}})


def test_auth_disabled_in_development_lets_requests_in_and_warns(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        client = make_app(ENVIRONMENT="development", AUTH_DISABLED=True).test_client()

    assert client.get("/api/v1/users").status_code == 200
    assert "AUTH_DISABLED: every API request is allowed without a key." in caplog.messages


def test_auth_disabled_is_ignored_outside_development(make_app):
    client = make_app(ENVIRONMENT="testing", AUTH_DISABLED=True).test_client()

    assert client.get("/api/v1/users").status_code == 401


def test_auth_disabled_is_refused_in_production(make_app):
    from backend.config_loading import ConfigError

    with pytest.raises(ConfigError, match="AUTH_DISABLED is for development"):
        make_app(**PRODUCTION, AUTH_DISABLED=True)


def test_cors_preflight_from_allowed_origin_needs_no_key(client):
    response = client.options(
        "/api/v1/users",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-AUTH-API-KEY, Content-Type",
        },
    )

    assert response.status_code == 204
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


def test_cors_headers_only_for_browsers_and_caches_told_answers_vary(client, auth_headers):
    response = client.get("/api/v1/users", headers=auth_headers)

    assert not [name for name, _ in response.headers if name.startswith("Access-Control")]
    assert "Origin" in response.vary
