"""Database wiring: engine options per database, SQLite's safety pragmas, timestamps."""

import functools
import time
from datetime import UTC, datetime
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import Flask, abort, current_app
from sqlalchemy import DateTime, Delete, Engine, delete, event, inspect, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from backend.extensions import Model, db, migrate

# A pooled connection idle for longer than this is checked before use: the database may
# have restarted meanwhile. A busy worker's connections skip the round trip.
PING_AFTER_IDLE_SECONDS = 1.0


def init_database(app: Flask) -> None:
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **_engine_options(app.config),
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    db.init_app(app)
    # Batch mode lets Alembic alter tables on SQLite, which cannot ALTER most things.
    # The folder by its path, not the working directory's: gunicorn --chdir, systemd.
    migrations = Path(app.root_path).parent / "migrations"
    migrate.init_app(app, db, str(migrations), render_as_batch=True, compare_type=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        else:
            _ping_idle_connections(db.engine)


def _engine_options(config: dict) -> dict:
    # Error messages (and so logged tracebacks) leave out the statement's values:
    # they are what clients sent, password hashes included.
    options: dict = {"hide_parameters": True}
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # An unreachable server becomes a 503 within seconds, not a hang.
        options["connect_args"] = {"connect_timeout": config["DATABASE_CONNECT_TIMEOUT"]}
    return options


def _ping_idle_connections(engine: Engine) -> None:
    """pool_pre_ping for connections that sat idle: a connection the server dropped
    (restart, failover) is replaced before use, so every worker recovers on its own."""

    @event.listens_for(engine, "checkin")
    def note_checkin(
        _dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry
    ) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        _proxy: PoolProxiedConnection,
    ) -> None:
        idle = time.monotonic() - record.info.get("checked_in", 0.0)
        if idle < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError() from error  # the pool replaces it and retries


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys, and so ON DELETE CASCADE, unless asked per connection.
    cursor.execute("PRAGMA foreign_keys = ON")
    # Readers no longer block the writer when several workers share the file.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def delete_or_404(model: type[Model], id: int, description: str) -> None:
    """Deletes and commits a row in one statement, or answers 404 with the description.

    Of two requests racing to delete the same row, one deletes it and the other gets
    the 404, on every database. The database's own ON DELETE rules apply.
    """
    key = inspect(model).primary_key[0]
    deleted = db.session.scalar(delete(model).where(key == id).returning(key))
    if deleted is None:
        abort(404, description=description)
    db.session.commit()


def delete_and_count(statement: Delete) -> int:
    """Runs a bulk DELETE and commits; how many rows went (for a clean-up job's log line).

    On the session's connection (its transaction): Connection.execute returns a
    CursorResult, with the rowcount; Session.execute promises only a Result.
    """
    deleted = db.session.connection().execute(statement).rowcount
    db.session.commit()
    return deleted


def utcnow() -> datetime:
    return datetime.now(UTC)


class Timestamps:
    """`created_at` and `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


def unapplied_migrations() -> str | None:
    """None when the database has every migration this code knows, else what is missing.

    Read by GET /health/ready and `flask doctor`: a worker started on a database the
    deploy did not upgrade would fail on the first query that needs a new column. A
    database ahead of the code (migrated before the new code is out) passes: its
    revision is one this code does not know.
    """
    directory = current_app.extensions["migrate"].directory
    heads = migration_heads(directory)
    with db.engine.connect() as connection:
        current = set()
        if inspect(connection).has_table("alembic_version"):
            query = text("SELECT version_num FROM alembic_version")
            current = set(connection.execute(query).scalars())
    if current == heads or current - known_revisions(directory):
        return None
    return (
        f"the database is at {', '.join(sorted(current)) or 'no revision'}, the migrations' "
        f"head is {', '.join(sorted(heads))}: run `flask db upgrade`"
    )


def migration_heads(directory: str) -> frozenset[str]:
    return frozenset(_scripts(directory).get_heads())


def known_revisions(directory: str) -> frozenset[str]:
    return frozenset(script.revision for script in _scripts(directory).walk_revisions())


@functools.cache
def _scripts(directory: str) -> ScriptDirectory:
    """Read once per process: the migration files change only with a deploy."""
    config = AlembicConfig()
    config.set_main_option("script_location", directory)
    return ScriptDirectory.from_config(config)
