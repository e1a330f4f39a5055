"""Layers the configuration sources and refuses settings that are unsafe to run with.

Precedence, lowest first: backend/settings.py, backend/config.py (or BACKEND_CONFIG_FILE),
FLASK_<KEY> variables, ENVIRONMENT and DATABASE_URL, the dict given to create_app.
A bad setting stops the process with one line on stderr naming the key.
"""

import os
from pathlib import Path

from flask import Flask

from backend import settings

ENVIRONMENTS = ("development", "testing", "production")
MIN_SECRET_LENGTH = 16
# HS256 wants a key at least as long as its 32-byte output (RFC 7518, 3.2).
MIN_JWT_SECRET_LENGTH = 32


class ConfigError(SystemExit):
    """Exits with the message on stderr and status 1, also under `flask` and gunicorn."""


def load_config(app: Flask, overrides: dict | None) -> None:
    app.config.from_object(settings)
    config_file = os.environ.get("BACKEND_CONFIG_FILE", Path(app.root_path) / "config.py")
    app.config.from_pyfile(config_file, silent=True)
    app.config.from_prefixed_env("FLASK")
    _read_environment_variable(app.config)
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    app.config.update(overrides or {})

    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri(app.config["SQLALCHEMY_DATABASE_URI"])
    _check(app.config)
    # Honoured in development only: tests and production always check keys.
    app.config["AUTH_DISABLED"] = (
        bool(app.config["AUTH_DISABLED"]) and app.config["ENVIRONMENT"] == "development"
    )


def _read_environment_variable(config: dict) -> None:
    bare, prefixed = os.environ.get("ENVIRONMENT"), os.environ.get("FLASK_ENVIRONMENT")
    if bare and prefixed and bare != prefixed:
        # Whichever won, a deploy meant as production could run as development.
        raise ConfigError(
            f"Config error: ENVIRONMENT is {bare!r} but FLASK_ENVIRONMENT is {prefixed!r}; "
            "set one of them."
        )
    if bare:
        config["ENVIRONMENT"] = bare


def _database_uri(uri: str | None) -> str:
    if not uri:
        # Flask-SQLAlchemy places a relative SQLite path in the instance folder.
        return "sqlite:///backend.db"
    # Some hosts still hand out the scheme SQLAlchemy 1.4 stopped accepting.
    if uri.startswith("postgres://"):
        return "postgresql://" + uri.removeprefix("postgres://")
    return uri


def _check(config: dict) -> None:
    if config["ENVIRONMENT"] not in ENVIRONMENTS:
        raise ConfigError(
            f"Config error: ENVIRONMENT is {config['ENVIRONMENT']!r}; "
            f"expected one of {', '.join(ENVIRONMENTS)}."
        )
    if not _valid_clients(config["API_CLIENTS"]):
        raise ConfigError(
            'Config error: API_CLIENTS must look like {"name": {"key": "...", "scopes": [...]}}.'
        )
    if "{token}" not in str(config["PASSWORD_RESET_URL"]):
        raise ConfigError("Config error: PASSWORD_RESET_URL must contain {token}.")
    if config["ENVIRONMENT"] == "production":
        for key in ("SECRET_KEY", "AUTH_KEY"):
            _require_real_secret(config, key)
        _require_real_secret(config, "JWT_SECRET_KEY", min_length=MIN_JWT_SECRET_LENGTH)
        if config["AUTH_DISABLED"]:
            raise ConfigError(
                "Config error: AUTH_DISABLED is for development; production refuses it."
            )


def _valid_clients(clients: object) -> bool:
    return isinstance(clients, dict) and all(
        isinstance(client, dict)
        and client.get("key")
        and isinstance(client.get("scopes"), list)
        and all(isinstance(scope, str) for scope in client["scopes"])
        for client in clients.values()
    )


def secret_problem(config: dict, key: str, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """What is wrong with a secret, never showing it; None when it will do. Also read by
    `flask doctor` (backend/doctor.py)."""
    value = str(config.get(key) or "")
    if not value or value == getattr(settings, key):
        return "missing or still the development default"
    if len(value) < min_length:
        return f"shorter than {min_length} characters"
    return None


def _require_real_secret(config: dict, key: str, min_length: int = MIN_SECRET_LENGTH) -> None:
    problem = secret_problem(config, key, min_length)
    if problem is None:
        return
    raise ConfigError(
        f"Config error: {key} is {problem}; production refuses to start. "
        f"Set FLASK_{key} to a long random value."
    )
