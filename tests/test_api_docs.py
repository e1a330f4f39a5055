"""The OpenAPI document, the docs pages that render it, and `flask openapi export`."""

import base64
import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from backend.api_docs import export_openapi
from tests.conftest import PRODUCTION, api_operations, error_body

COMMITTED_DOCUMENT = Path(__file__).parent.parent / "docs" / "openapi.json"
# Every operation the document must describe, from the registry.
DOCUMENTED = [operation for operation in api_operations() if not operation.definition.hidden]


def test_document_is_valid_openapi(client):
    document = client.get("/api/v1/openapi.json").json

    validate(document)
    assert document["openapi"].startswith("3.1")


def test_document_describes_every_operation_with_its_scope_and_errors(client):
    document = client.get("/api/v1/openapi.json").json

    assert set(document["paths"]) == {operation.openapi_path for operation in DOCUMENTED}
    for operation in DOCUMENTED:
        path = operation.openapi_path
        described = document["paths"][path][operation.method.lower()]
        assert len(described["tags"]) == 1
        assert {"400", "401", "403", "503"} <= set(described["responses"])
        if operation.public:
            assert described["security"] == [], path
            continue
        [scope] = operation.scopes
        if operation.users_only:
            assert described["security"] == [{"bearerAuth": [scope]}]
        else:
            assert described["security"] == [{"apiKey": [scope]}, {"bearerAuth": [scope]}]
        if "{" in path:
            assert "404" in described["responses"]
        if operation.definition.request_body_schema is not None:
            assert "413" in described["responses"]
            assert "requestBody" in described
        error = described["responses"]["401"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorSchema"}


def test_document_names_the_configured_header_title_and_version(make_app):
    client = make_app(
        AUTH_HEADER="X-Api-Key", API_TITLE="Shop API", API_VERSION="2.1.0"
    ).test_client()
    document = client.get("/api/v1/openapi.json").json

    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert (document["info"]["title"], document["info"]["version"]) == ("Shop API", "2.1.0")


def test_id_parameters_say_their_range(client):
    document = client.get("/api/v1/openapi.json").json

    for operation in DOCUMENTED:
        parameters = document["paths"][operation.openapi_path].get("parameters", [])
        schemas = {parameter["name"]: parameter["schema"] for parameter in parameters}
        for name in re.findall(r"<id:([^<>]+)>", operation.rule):
            assert schemas[name] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def test_committed_document_is_current(app):
    # When this fails: flask openapi export -o docs/openapi.json, and commit the file.
    with app.app_context():
        runner = app.test_cli_runner()
        result = runner.invoke(export_openapi)

    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(COMMITTED_DOCUMENT.read_text())


def test_export_writes_a_file(app, tmp_path):
    target = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(args=["openapi", "export", "-o", str(target)])

    assert result.exit_code == 0
    assert json.loads(target.read_text())["paths"]


@pytest.mark.parametrize("page", ["/api/v1/docs", "/api/v1/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "http://" not in html and "https://" not in html
    for asset in ("swagger-ui/swagger-ui-bundle.js", "redoc/redoc.standalone.js"):
        if asset in html:
            assert client.get(f"/api/v1/docs/static/{asset}").status_code == 200


def test_docs_are_off_by_default_in_production(make_app):
    app = make_app(**PRODUCTION)
    client = app.test_client()

    for path in ("/api/v1/openapi.json", "/api/v1/docs", "/api/v1/redoc"):
        assert client.get(path).status_code == 404


def test_docs_can_be_turned_off_in_development(make_app):
    client = make_app(ENVIRONMENT="development", API_DOCS_ENABLED=False).test_client()

    assert client.get("/api/v1/docs").status_code == 404


def test_docs_turned_on_in_production_can_require_credentials(make_app):
    app = make_app(
        **PRODUCTION,
        API_DOCS_ENABLED=True,
        API_DOCS_AUTH={"username": "docs", "password": "read-the-docs"},
    )
    client = app.test_client()

    def basic(username: str, password: str) -> dict:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    anonymous = client.get("/api/v1/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="API docs"'
    assert error_body(anonymous) == {"message": "Credentials required for the API docs."}
    assert client.get("/api/v1/docs", headers=basic("docs", "wrong")).status_code == 401
    assert client.get("/api/v1/docs", headers=basic("docs", "read-the-docs")).status_code == 200
    assert client.get("/api/v1/openapi.json", headers=basic("docs", "read-the-docs")).is_json
