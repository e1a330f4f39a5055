"""Security headers on every answer, HSTS only in production over HTTPS."""

import pytest

from backend.api_docs import CONTENT_SECURITY_POLICY as DOCS_POLICY
from tests.conftest import PRODUCTION

STRICT_POLICY = "default-src 'none'; frame-ancestors 'none'"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def assert_security_headers(response, policy: str = STRICT_POLICY) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers.get("Content-Security-Policy") == policy
    assert "Strict-Transport-Security" not in response.headers


def test_json_answers_carry_the_strict_policy(client, auth_headers):
    response = client.get("/api/v1/users", headers=auth_headers)

    assert response.status_code == 200
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/users", 401), ("/nowhere", 404), ("/health/live?x=1", 200)],
)
def test_errors_and_health_answers_carry_them_too(client, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert_security_headers(response)


def test_an_unexpected_error_carries_them(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert_security_headers(response)


def test_a_204_keeps_no_body_and_carries_them(client, auth_headers, make_item):
    item = make_item()

    response = client.delete(f"/api/v1/items/{item['id']}", headers=auth_headers)

    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    assert_security_headers(response)


def test_a_304_carries_them(client):
    script = "/api/v1/docs/static/swagger-ui-init.js"
    etag = client.get(script).headers["ETag"]

    response = client.get(script, headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert_security_headers(response, DOCS_POLICY)


def test_a_cors_preflight_is_still_answered_for_the_origin(client):
    response = client.options(
        "/api/v1/users",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )

    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert_security_headers(response)


@pytest.mark.parametrize("page", ["/api/v1/docs", "/api/v1/redoc"])
def test_docs_pages_keep_their_own_policy(client, page):
    response = client.get(page)

    assert response.status_code == 200
    assert_security_headers(response, DOCS_POLICY)


def test_hsts_in_production_over_https(make_app):
    client = make_app(**PRODUCTION, HSTS_SECONDS=600).test_client()

    over_https = client.get("/health/live", base_url="https://api.example.com")
    over_http = client.get("/health/live", base_url="http://api.example.com")

    assert over_https.headers["Strict-Transport-Security"] == "max-age=600"
    assert "Strict-Transport-Security" not in over_http.headers


@pytest.mark.parametrize(("proxies", "sent"), [(1, True), (0, False)])
def test_hsts_behind_a_proxy_trusts_its_scheme_only_when_told_to(make_app, proxies, sent):
    client = make_app(**PRODUCTION, TRUSTED_PROXIES=proxies).test_client()

    response = client.get(
        "/health/live", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    )

    assert ("Strict-Transport-Security" in response.headers) is sent


def test_no_hsts_outside_production_even_over_https(client):
    response = client.get("/health/live", base_url="https://localhost")

    assert "Strict-Transport-Security" not in response.headers


def test_switched_off_no_header_is_added(make_app):
    client = make_app(**PRODUCTION, SECURITY_HEADERS_ENABLED=False).test_client()

    response = client.get("/health/live", base_url="https://api.example.com")

    assert response.status_code == 200
    for name in [*HEADERS, "Content-Security-Policy", "Strict-Transport-Security"]:
        assert name not in response.headers
