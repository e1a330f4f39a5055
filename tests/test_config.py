"""The factory and its layered configuration, including the refusal of unsafe production."""

import subprocess
import sys
from pathlib import Path

import pytest

from backend import create_app, settings
from backend.config_loading import ConfigError
from tests.conftest import PRODUCTION, api_operations, make_config

PROJECT_ROOT = Path(__file__).parent.parent


@pytest.fixture
def clean_env(monkeypatch):
    """No FLASK_*, ENVIRONMENT or DATABASE_URL from the shell running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith("FLASK_") or name in {
            "DATABASE_URL",
            "BACKEND_CONFIG_FILE",
            "ENVIRONMENT",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("BACKEND_CONFIG_FILE", "/nonexistent/config.py")
    return monkeypatch


def test_factory_builds_app_with_api_and_health(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}

    assert "health.check_health" in endpoints
    handlers = {operation.definition.func.__name__ for operation in api_operations()}
    assert {f"api/v1.{name}" for name in handlers} <= endpoints


def test_committed_defaults_suit_development(clean_env):
    clean_env.setenv("FLASK_LOG_FILE", "null")  # keep the test from writing logs/
    app = create_app()

    assert app.config["ENVIRONMENT"] == "development"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///backend.db"
    assert app.config["AUTH_HEADER"] == "X-AUTH-API-KEY"
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_each_layer_overrides_the_one_below(clean_env, tmp_path):
    config_file = tmp_path / "config.py"
    config_file.write_text('LOG_LEVEL = "WARNING"\nAUTH_HEADER = "X-From-File"\nLOG_FILE = None\n')
    clean_env.setenv("BACKEND_CONFIG_FILE", str(config_file))
    clean_env.setenv("FLASK_AUTH_HEADER", "X-From-Env")
    clean_env.setenv(
        "FLASK_API_CLIENTS", '{"ci": {"key": "from-env", "scopes": ["scheduler:admin"]}}'
    )
    clean_env.setenv("FLASK_MAX_CONTENT_LENGTH", "2048")
    clean_env.setenv("DATABASE_URL", "sqlite:///from-env.db")

    app = create_app({"MAX_CONTENT_LENGTH": 4096})

    assert app.config["LOG_LEVEL"] == "WARNING"  # file over defaults
    assert app.config["AUTH_HEADER"] == "X-From-Env"  # environment over file
    assert app.config["API_CLIENTS"] == {
        "ci": {"key": "from-env", "scopes": ["scheduler:admin"]}
    }  # JSON parsed
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///from-env.db"
    assert app.config["MAX_CONTENT_LENGTH"] == 4096  # create_app's dict over everything


def test_postgres_scheme_is_normalised():
    app = create_app(make_config(SQLALCHEMY_DATABASE_URI="postgres://u@db.example/app"))

    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql://u@db.example/app"


def test_production_starts_with_real_secrets():
    app = create_app(make_config(**PRODUCTION))

    assert app.config["ENVIRONMENT"] == "production"


@pytest.mark.parametrize("key", ["SECRET_KEY", "AUTH_KEY"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is missing or still the development default"),
        ("", "is missing or still the development default"),
        ("default", "is missing or still the development default"),
        ("too-short", "is shorter than 16 characters"),
    ],
)
def test_production_refuses_unsafe_secrets(key, value, problem):
    from backend import settings

    config = {**PRODUCTION, key: getattr(settings, key) if value == "default" else value}
    with pytest.raises(ConfigError) as refused:
        create_app(make_config(**config))

    assert str(refused.value) == (
        f"Config error: {key} {problem}; production refuses to start. "
        f"Set FLASK_{key} to a long random value."
    )
    assert refused.value.code != 0


def test_production_refusal_is_one_line_on_stderr(clean_env):
    clean_env.setenv("FLASK_ENVIRONMENT", "production")
    clean_env.setenv("FLASK_LOG_FILE", "null")
    result = subprocess.run(
        [sys.executable, "-c", "from backend import create_app; create_app()"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Config error: SECRET_KEY is missing or still the development default; "
        "production refuses to start. Set FLASK_SECRET_KEY to a long random value."
    ]


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="ENVIRONMENT is 'staging'"):
        create_app(make_config(ENVIRONMENT="staging"))


@pytest.mark.parametrize(
    "clients",
    [
        ["key"],
        {"ci": "key"},
        {"ci": {"scopes": []}},
        {"ci": {"key": "k"}},
        {"ci": {"key": "k", "scopes": "items:read"}},
    ],
)
def test_malformed_api_clients_are_refused(clients):
    with pytest.raises(ConfigError, match="API_CLIENTS"):
        create_app(make_config(API_CLIENTS=clients))


def test_bare_environment_variable_is_read_like_the_prefixed_one(clean_env):
    clean_env.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is missing or still the development"):
        create_app()

    clean_env.setenv("FLASK_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is missing or still the development"):
        create_app()


def test_environment_variables_that_disagree_are_refused(clean_env):
    clean_env.setenv("ENVIRONMENT", "production")
    clean_env.setenv("FLASK_ENVIRONMENT", "development")
    with pytest.raises(ConfigError, match="ENVIRONMENT is 'production' but FLASK_ENVIRONMENT"):
        create_app()


def test_config_example_copied_unchanged_changes_nothing(clean_env):
    clean_env.setenv("BACKEND_CONFIG_FILE", str(PROJECT_ROOT / "config.example.py"))
    clean_env.setenv("FLASK_LOG_FILE", "null")

    app = create_app()
    assert app.config["JOBS"] == settings.JOBS
    assert app.config["SECRET_KEY"] == settings.SECRET_KEY

    clean_env.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is missing or still the development"):
        create_app()
