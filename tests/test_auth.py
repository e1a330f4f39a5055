"""API keys and scopes on every API route, the development switch, and CORS.

Bearer tokens, roles and object-level rules: tests/features/test_accounts.py and
tests/features/test_roles.py.
"""

import logging

import pytest

from backend.api import registry
from backend.api_docs import api_docs
from tests.conftest import (
    AUTH_KEY,
    NO_SCOPES_KEY,
    PRODUCTION,
    REPORTING_KEY,
    ApiOperation,
    api_operations,
    error_body,
)

# Every API operation, from the registry. Ids in paths are 1, a row no test creates:
# the key and its scopes are checked before the handler looks for the row.
API_OPERATIONS = api_operations()
GUARDED = [operation for operation in API_OPERATIONS if not operation.public]
# What services call with a key: all but the endpoints of a person's own account.
FOR_KEYS = [operation for operation in GUARDED if not operation.users_only]
MISSING_KEY = (
    "Missing API key: send it in the X-AUTH-API-KEY header, "
    "or a bearer token in the Authorization header."
)


def call(client, operation: ApiOperation, key: str | None):
    """The operation with an empty body where it takes one: valid or not, auth comes first."""
    body = {} if operation.definition.request_body_schema else None
    headers = {"X-AUTH-API-KEY": key} if key else {}
    return client.open(operation.url, method=operation.method, json=body, headers=headers)


def assert_let_through(response) -> None:
    # The handler answered: 2xx, 400 for the empty body, or 404 for the missing row.
    assert response.status_code not in {401, 403}, response.json
    assert response.status_code < 500, response.json


def test_every_api_route_is_public_or_needs_one_scope_named_after_its_access(app):
    prefix = f"/{registry.prefix}/"
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix) and not rule.endpoint.startswith(f"{api_docs.name}.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == {(operation.method, operation.rule) for operation in API_OPERATIONS}

    for operation in GUARDED:
        access = "read" if operation.method == "GET" else "write"
        [scope] = operation.scopes
        assert scope and scope.endswith(f":{access}"), str(operation)
    public = {str(operation) for operation in API_OPERATIONS if operation.public}
    assert public == {
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/password-reset",
        "POST /api/v1/auth/password-reset/confirm",
    }


@pytest.mark.parametrize("operation", FOR_KEYS, ids=str)
def test_missing_key_is_401(client, operation):
    response = call(client, operation, None)

    assert response.status_code == 401
    assert error_body(response) == {"message": MISSING_KEY}


@pytest.mark.parametrize("operation", FOR_KEYS, ids=str)
def test_wrong_key_is_401(client, operation):
    response = call(client, operation, "nope")

    assert response.status_code == 401
    assert error_body(response) == {"message": "Invalid API key."}


@pytest.mark.parametrize("operation", FOR_KEYS, ids=str)
def test_key_without_the_scope_is_403_naming_it(client, operation):
    response = call(client, operation, NO_SCOPES_KEY)

    [scope] = operation.scopes
    assert response.status_code == 403
    assert error_body(response) == {
        "message": f"This API key lacks the scope {scope}.",
        "missing_scope": scope,
    }


@pytest.mark.parametrize("operation", FOR_KEYS, ids=str)
def test_key_with_just_that_scope_is_let_through(make_app, operation):
    app = make_app(API_CLIENTS={"exact": {"key": "exact-key", "scopes": operation.scopes}})

    assert_let_through(call(app.test_client(), operation, "exact-key"))


@pytest.mark.parametrize("operation", FOR_KEYS, ids=str)
def test_read_only_client_reads_but_cannot_write(client, operation):
    response = call(client, operation, REPORTING_KEY)

    if operation.method == "GET":
        assert_let_through(response)
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("operation", [op for op in GUARDED if op.users_only], ids=str)
def test_own_account_endpoints_refuse_keys_and_want_a_token(client, operation):
    with_key = call(client, operation, AUTH_KEY)
    without = call(client, operation, None)

    assert with_key.status_code == 403
    assert "bearer token" in with_key.json["message"]
    assert without.status_code == 401
    assert "Missing bearer token" in without.json["message"]


@pytest.mark.parametrize("operation", [op for op in API_OPERATIONS if op.public], ids=str)
def test_public_endpoints_need_no_credentials(client, operation):
    assert_let_through(call(client, operation, None))


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
    assert "AUTH_DISABLED: every API request is allowed without credentials." in caplog.messages


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
            "Access-Control-Request-Headers": "X-AUTH-API-KEY, Authorization, Content-Type",
        },
    )

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"x-auth-api-key", "authorization", "content-type"} <= set(allowed.split(", "))


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
