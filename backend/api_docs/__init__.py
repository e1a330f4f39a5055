"""The API's OpenAPI document, Swagger UI and ReDoc, and `flask openapi export`.

    /api/v1/openapi.json   the document rebar generates from the handlers and schemas
    /api/v1/docs           Swagger UI, to read and try the API
    /api/v1/redoc          ReDoc, to read it

The pages use the copies in static/ and load nothing from outside the app: their
Content-Security-Policy has the browser refuse anything else (ReDoc's footer, for one,
would fetch a logo from its vendor's CDN). They are served unless API_DOCS_ENABLED is
false, which is its default in production; with API_DOCS_AUTH set they ask for that
username and password (HTTP Basic).
"""

import hashlib
import hmac
import json
from pathlib import Path

import click
from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from flask.cli import AppGroup

from backend.api import registry
from backend.errors import json_error

api_docs = Blueprint(
    "api_docs",
    __name__,
    url_prefix="/api/v1",
    static_folder="static",
    static_url_path="/docs/static",
    template_folder="templates",
)
openapi_cli = AppGroup("openapi", help="The OpenAPI document of the API.")


def init_api_docs(app: Flask) -> None:
    app.cli.add_command(openapi_cli)
    enabled = app.config["API_DOCS_ENABLED"]
    if enabled is None:
        enabled = app.config["ENVIRONMENT"] != "production"
    if enabled:
        app.register_blueprint(api_docs)


def openapi_document() -> dict:
    document = registry.swagger_generator.generate(registry)
    document["info"] = {
        "title": current_app.config["API_TITLE"],
        "version": current_app.config["API_VERSION"],
        "description": current_app.config["API_DESCRIPTION"],
    }
    return document


# Inline styles: Swagger UI and ReDoc set them from JavaScript. blob: workers: ReDoc's search.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)


@api_docs.after_request
def restrict_to_own_assets(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@api_docs.before_request
def require_docs_credentials() -> Response | None:
    credentials = current_app.config["API_DOCS_AUTH"]
    if not credentials:
        return None
    given = request.authorization
    if given is None or not (
        _same(given.username, credentials["username"])
        & _same(given.password, credentials["password"])
    ):
        response = json_error("Credentials required for the API docs.", 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="API docs"'
        return response
    return None


def _same(given: str | None, expected: str) -> bool:
    # Digests have one length, so the comparison takes the same time for any input.
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest((given or "").encode()).digest(), digest(expected.encode()).digest()
    )


@api_docs.get("/openapi.json")
def get_openapi_document() -> dict:
    return openapi_document()


@api_docs.get("/docs")
def show_swagger_ui() -> str:
    return render_template("swagger_ui.html", spec_url=url_for(".get_openapi_document"))


@api_docs.get("/redoc")
def show_redoc() -> str:
    return render_template("redoc.html", spec_url=url_for(".get_openapi_document"))


@openapi_cli.command("export")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
def export_openapi(output: Path | None) -> None:
    """Write the OpenAPI document, as docs/openapi.json keeps it."""
    text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
