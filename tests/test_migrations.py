"""The migration history builds, removes and rebuilds the schema, with no drift from the models."""

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
    assert table_names() == {"users", "items", "apscheduler_jobs", "job_runs", "scheduler_lease"}

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
