"""Database wiring: engine options per database, SQLite's safety pragmas, timestamps."""

from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import DateTime, event
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db, migrate


def init_database(app: Flask) -> None:
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **_engine_options(app.config),
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    db.init_app(app)
    # Batch mode lets Alembic alter tables on SQLite, which cannot ALTER most things.
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)


def _engine_options(config: dict) -> dict:
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return {
            # A connection the server dropped (restart, failover) is replaced
            # before use, so every worker recovers on its own.
            "pool_pre_ping": True,
            # An unreachable server becomes a 503 within seconds, not a hang.
            "connect_args": {"connect_timeout": config["DATABASE_CONNECT_TIMEOUT"]},
        }
    return {}


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # SQLite ignores foreign keys, and so ON DELETE CASCADE, unless asked per connection.
    cursor.execute("PRAGMA foreign_keys = ON")
    # Readers no longer block the writer when several workers share the file.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Timestamps:
    """`created_at` and `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
