"""The migration history builds, removes and rebuilds the schema, with no drift from the models."""

import os
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
from sqlalchemy import inspect

from backend import create_app
from backend.extensions import db
from tests.conftest import TEST_DATABASE_URL, make_config


@pytest.fixture
def migrated_app(tmp_path, database_schema):
    """An app on an empty database: the PostgreSQL test database, or a fresh SQLite file."""
    uri = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'migrations.db'}"
    app = create_app(make_config(SQLALCHEMY_DATABASE_URI=uri))
    with app.app_context():
        flask_migrate.downgrade(revision="base")
        yield app
        # Leave the schema as the rest of the suite expects it.
        flask_migrate.upgrade()
        db.engine.dispose()


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_then_check(migrated_app):
    assert table_names() == set()

    flask_migrate.upgrade()
    assert table_names() == set(db.metadata.tables)  # every model's table, and only those

    flask_migrate.downgrade(revision="base")
    assert table_names() == set()

    flask_migrate.upgrade()
    flask_migrate.check()  # exits non-zero when the models and the migrations differ


def test_check_detects_a_model_change_without_migration(migrated_app):
    from sqlalchemy import Column, Integer, Table

    flask_migrate.upgrade()
    extra = Table("unmigrated", db.metadata, Column("id", Integer, primary_key=True))
    try:
        with pytest.raises(SystemExit) as drift:
            flask_migrate.check()
        assert drift.value.code != 0
    finally:
        db.metadata.remove(extra)


def test_upgrade_against_an_unreachable_database_says_so_in_one_line(tmp_path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FLASK_") and name != "ENVIRONMENT"
    }
    env["BACKEND_CONFIG_FILE"] = str(tmp_path / "none.py")
    env["FLASK_LOG_FILE"] = "null"
    env["DATABASE_URL"] = "postgresql://someone:pa55word@127.0.0.1:1/backend"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "db", "upgrade"],
        cwd=Path(__file__).parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Cannot connect to the database at postgresql://someone:***@127.0.0.1:1/backend: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused. '
        "Check DATABASE_URL (or SQLALCHEMY_DATABASE_URI) and that the server is running."
    ]


def test_each_migration_keeps_the_rows_that_refer_to_the_tables_it_rebuilds(migrated_app):
    """On SQLite, batch mode rebuilds a table by dropping it; with foreign keys on, ON
    DELETE CASCADE would empty the tables that refer to it (migrations/env.py)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    revisions = list(ScriptDirectory.from_config(migrate_config()).walk_revisions())
    first = revisions[-1].revision
    flask_migrate.upgrade(revision=first)
    now = "2026-01-01 00:00:00"
    db.session.execute(
        text(
            "INSERT INTO users (email, name, password_hash, created_at, updated_at) "
            "VALUES ('ada@example.com', 'Ada', 'x', :now, :now)"
        ),
        {"now": now},
    )
    db.session.execute(
        text(
            "INSERT INTO items (title, owner_id, created_at, updated_at) "
            "VALUES ('kept', 1, :now, :now)"
        ),
        {"now": now},
    )
    db.session.commit()
    db.session.remove()

    flask_migrate.upgrade()

    assert db.session.execute(text("SELECT title FROM items")).scalars().all() == ["kept"]
    db.session.remove()


def migrate_config():
    from flask import current_app

    return current_app.extensions["migrate"].migrate.get_config()
