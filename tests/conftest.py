"""Shared fixtures: an app per test on a clean database, a client, keys, and builders.

Tests run on in-memory SQLite by default, and on PostgreSQL when TEST_DATABASE_URL
names a database (the schema is built there once with the real migrations, and
every table is truncated after each test).

Tests that police every API operation take the list from `api_operations()`, read
from rebar's registry, so adding or removing a feature needs no edit here.
"""

import logging
import os
import re
from dataclasses import dataclass

import flask_migrate
import pytest
from flask_rebar.rebar import PathDefinition
from sqlalchemy import text

from backend import create_app, settings
from backend.api import operations
from backend.app import import_features
from backend.auth import ScopeAuthenticator
from backend.extensions import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
AUTH_KEY = "test-default-key"
REPORTING_KEY = "test-reporting-key"  # read-only client
NO_SCOPES_KEY = "test-no-scopes-key"
PASSWORD = "correct horse"  # every user make_user creates has it


@dataclass(frozen=True)
class ApiOperation:
    """One method of one API route, as its feature registered it."""

    method: str
    rule: str  # with its prefix and parameters: /api/v1/users/<id:user_id>
    definition: PathDefinition

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"

    @property
    def url(self) -> str:
        """The rule with 1 for every path parameter."""
        return re.sub(r"<[^>]+>", "1", self.rule)

    @property
    def openapi_path(self) -> str:
        """The rule as OpenAPI writes it: <id:user_id> is {user_id}."""
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", self.rule)

    @property
    def feature(self) -> str:
        """The folder of backend/features whose handlers registered it."""
        module = self.definition.func.__module__
        return module.removeprefix("backend.features.").removesuffix(".handlers")

    @property
    def scopes(self) -> list[str | None]:
        return [
            authenticator.scope
            for authenticator in self.definition.authenticators
            if isinstance(authenticator, ScopeAuthenticator)
        ]

    @property
    def public(self) -> bool:
        """Open to anyone: registering, signing in, refreshing, resetting a password."""
        return not self.definition.authenticators

    @property
    def users_only(self) -> bool:
        """For a signed-in person's own account: a bearer token, never an API key."""
        return any(getattr(a, "users_only", False) for a in self.definition.authenticators)


def api_operations() -> list[ApiOperation]:
    """Every operation of the features listed in FEATURES (backend/app.py)."""
    import_features()  # importing the features' handlers fills the registry
    return [
        ApiOperation(method.upper(), rule, definition) for rule, method, definition in operations()
    ]


# The read-only client's scopes: every `:read` scope the endpoints declare.
READ_SCOPES = sorted(
    {
        scope
        for operation in api_operations()
        for scope in operation.scopes
        if scope and scope.endswith(":read")
    }
)


# What production needs to start: real secrets and a cache shared by all workers.
PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "s" * 32,
    "AUTH_KEY": "a" * 32,
    "JWT_SECRET_KEY": "j" * 32,
    "CACHE_TYPE": "NullCache",
}


@pytest.fixture
def logged_app(make_app, tmp_path):
    """An app that also logs to a file, read with log_lines(app)."""
    return make_app(LOG_FILE=str(tmp_path / "app.log"))


def log_lines(app) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    with open(app.config["LOG_FILE"], encoding="utf-8") as log_file:
        return log_file.read().splitlines()


def error_body(response) -> dict:
    """A JSON error without its request id, once that is checked to be the response's."""
    body = dict(response.json)
    assert body.pop("request_id") == response.headers["X-Request-ID"]
    return body


def make_config(**overrides: object) -> dict:
    config = {
        "ENVIRONMENT": "testing",
        "SQLALCHEMY_DATABASE_URI": TEST_DATABASE_URL or "sqlite://",
        "AUTH_KEY": AUTH_KEY,
        "API_CLIENTS": {
            "reporting": {"key": REPORTING_KEY, "scopes": READ_SCOPES},
            "no-scopes": {"key": NO_SCOPES_KEY, "scopes": []},
        },
        "ALLOWED_ORIGINS": ["https://app.example.com"],
        "LOG_FILE": None,
        # Hashing at full cost would make the suite crawl; argon2id all the same.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 8,
        "JWT_SECRET_KEY": "test-jwt-secret-key-of-32-bytes!",
        "MAIL_URL": "memory://",
        # Far above what a test sends; tests/test_rate_limits.py sets tight ones.
        "RATE_LIMITS": {name: "100000 per minute" for name in settings.RATE_LIMITS},
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def database_schema():
    """On PostgreSQL, the schema as the migrations build it, once per run."""
    if TEST_DATABASE_URL:
        app = create_app(make_config())
        with app.app_context():
            flask_migrate.downgrade(revision="base")
            flask_migrate.upgrade()
            db.engine.dispose()


@pytest.fixture
def make_app(database_schema):
    """Builds apps with config overrides on the test database, cleaned up after the test."""
    apps = []

    def make(**overrides):
        app = create_app(make_config(**overrides))
        with app.app_context():
            if app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite://":
                db.create_all()
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            if app.config["SQLALCHEMY_DATABASE_URI"] == TEST_DATABASE_URL:
                tables = ", ".join(table.name for table in db.metadata.sorted_tables)
                db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                db.session.commit()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth_headers(app):
    return {app.config["AUTH_HEADER"]: AUTH_KEY}


@pytest.fixture
def make_user(client, auth_headers):
    """Creates a user through the API and returns it as the API shows it."""
    count = 0

    def make(**overrides):
        nonlocal count
        count += 1
        body = {"email": f"user{count}@example.com", "name": f"User {count}"}
        body["password"] = PASSWORD
        body.update(overrides)
        response = client.post("/api/v1/users", json=body, headers=auth_headers)
        assert response.status_code == 201, response.json
        return response.json

    return make


@pytest.fixture
def make_item(client, auth_headers, make_user):
    """Creates an item (and an owner unless one is given) through the API."""

    def make(**overrides):
        body = {"title": "An item", "description": "Something to own"}
        body.update(overrides)
        body.setdefault("owner_id", make_user()["id"])
        response = client.post("/api/v1/items", json=body, headers=auth_headers)
        assert response.status_code == 201, response.json
        return response.json

    return make


def sign_in(client, email: str, password: str = PASSWORD, **extra: object) -> dict:
    """Logs in and returns the token pair."""
    response = client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.json
    return response.json


def bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def make_member(client, make_user):
    """Creates a user with a role, signs them in, and returns (user, headers)."""

    def make(role: str = "user", **overrides):
        user = make_user(role=role, **overrides)
        return user, bearer(sign_in(client, user["email"]))

    return make
