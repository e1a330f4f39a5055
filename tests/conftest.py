"""Shared fixtures: an app per test on a clean database, a client, keys, and builders.

Tests run on in-memory SQLite by default, and on PostgreSQL when TEST_DATABASE_URL
names a database (the schema is built there once with the real migrations, and
every table is truncated after each test).
"""

import os

import flask_migrate
import pytest
from sqlalchemy import text

from backend import create_app
from backend.extensions import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
AUTH_KEY = "test-default-key"
REPORTING_KEY = "test-reporting-key"  # read-only client
NO_SCOPES_KEY = "test-no-scopes-key"


# What production needs to start: real secrets and a cache shared by all workers.
PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "s" * 32,
    "AUTH_KEY": "a" * 32,
    "CACHE_TYPE": "NullCache",
}


def make_config(**overrides: object) -> dict:
    config = {
        "ENVIRONMENT": "testing",
        "SQLALCHEMY_DATABASE_URI": TEST_DATABASE_URL or "sqlite://",
        "AUTH_KEY": AUTH_KEY,
        "API_CLIENTS": {
            "reporting": {"key": REPORTING_KEY, "scopes": ["users:read", "items:read"]},
            "no-scopes": {"key": NO_SCOPES_KEY, "scopes": []},
        },
        "ALLOWED_ORIGINS": ["https://app.example.com"],
        "LOG_FILE": None,
        # Hashing at full cost would make the suite crawl; the method is still checked.
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
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
        body["password"] = "correct horse"
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
