"""GET /health, /health/live and /health/ready: no key, and honest about what they check."""

import os
import socket

import flask_migrate
import pytest
from sqlalchemy import text, update

from backend.extensions import db
from backend.scheduler.leader import LeaseElector
from backend.scheduler.models import SchedulerLease
from tests.conftest import TEST_DATABASE_URL

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"
ALL_OK = {"database": "ok", "migrations": "ok", "scheduler": "ok", "redis": "not configured"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hold_lease(app) -> LeaseElector:
    """As an instance running the jobs does: takes the scheduler's lease."""
    config = app.config
    elector = LeaseElector(
        db.engine,
        lambda: None,
        lambda: None,
        lambda: None,
        ttl=config["SCHEDULER_LEASE_TTL"],
        interval=config["SCHEDULER_LEASE_INTERVAL"],
    )
    elector.owner = "another-instance"
    assert elector.acquire_or_renew()
    return elector


@pytest.fixture
def make_ready_app(make_app):
    """Apps on a database at the migrations' head, with the lease held by an instance."""

    def make(**overrides):
        app = make_app(**overrides)
        with app.app_context():
            if not TEST_DATABASE_URL:
                flask_migrate.stamp()  # create_all made the tables; the migrations did on PostgreSQL
            hold_lease(app)
        return app

    return make


def assert_unavailable(response, message: str, checks: dict) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {
        "message": message,
        "status": "unavailable",
        "checks": checks,
        "request_id": response.headers["X-Request-ID"],
    }


def test_health_is_200_with_database_check_and_needs_no_key(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_health_is_503_when_database_is_unreachable(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()
    response = client.get("/health")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {
        "message": "The database is unreachable.",
        "status": "unavailable",
        "database": "unreachable",
        "request_id": response.headers["X-Request-ID"],
    }


def test_live_is_200_while_the_database_is_unreachable(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()

    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_is_200_when_every_check_passes(make_ready_app):
    response = make_ready_app().test_client().get("/health/ready")

    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": ALL_OK}


def test_ready_is_503_while_the_database_is_unreachable(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()

    response = client.get("/health/ready")

    assert_unavailable(
        response,
        "Not ready: database.",
        ALL_OK
        | {"database": "unreachable", "migrations": "not checked", "scheduler": "not checked"},
    )


def test_ready_is_503_until_the_migrations_are_applied(make_app):
    # Tables made by create_all, never by the migrations: no revision recorded.
    client = make_app(SQLALCHEMY_DATABASE_URI="sqlite://").test_client()

    response = client.get("/health/ready")

    assert response.json["checks"]["migrations"].startswith("the database is at no revision")
    assert response.json["checks"]["migrations"].endswith("run `flask db upgrade`")
    assert_unavailable(
        response,
        "Not ready: migrations.",
        ALL_OK | {"migrations": response.json["checks"]["migrations"], "scheduler": "not checked"},
    )


def test_ready_is_503_when_no_instance_ever_held_the_lease(make_app):
    app = make_app()
    with app.app_context():
        if not TEST_DATABASE_URL:
            flask_migrate.stamp()

    response = app.test_client().get("/health/ready")

    problem = response.json["checks"]["scheduler"]
    assert problem.startswith("no instance has held the lease in the last 40 s")
    assert_unavailable(response, "Not ready: scheduler.", ALL_OK | {"scheduler": problem})


@pytest.mark.parametrize(
    ("seconds_since_renewal", "ready"),
    # TTL + INTERVAL is the longest a handover takes: 30 + 10 s by default.
    [(39, True), (41, False)],
)
def test_ready_allows_a_lease_handover_but_not_a_lease_abandoned(
    make_ready_app, seconds_since_renewal, ready
):
    app = make_ready_app()
    with app.app_context():
        # Renewed just now: expires_at is TTL from now. Moved back as if renewed earlier.
        db.session.execute(
            update(SchedulerLease).values(
                expires_at=SchedulerLease.expires_at - seconds_since_renewal
            )
        )
        db.session.commit()

    response = app.test_client().get("/health/ready")

    assert response.status_code == (200 if ready else 503)
    assert (response.json["checks"]["scheduler"] == "ok") is ready


def test_ready_needs_no_lease_without_jobs(make_app):
    app = make_app(JOBS=[])
    with app.app_context():
        if not TEST_DATABASE_URL:
            flask_migrate.stamp()

    response = app.test_client().get("/health/ready")

    assert response.status_code == 200
    assert response.json["checks"]["scheduler"] == "no jobs"


@pytest.mark.parametrize(
    "redis_settings",
    [
        {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://127.0.0.1:{port}/0"},
        {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:{port}/0"},
    ],
    ids=["cache", "rate limits"],
)
def test_ready_is_503_while_a_redis_in_use_is_unreachable(make_ready_app, redis_settings):
    port = closed_port()
    settings = {name: value.format(port=port) for name, value in redis_settings.items()}

    response = make_ready_app(**settings).test_client().get("/health/ready")

    assert_unavailable(response, "Not ready: redis.", ALL_OK | {"redis": "unreachable"})


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)")
def test_ready_pings_the_cache_redis(make_ready_app):
    app = make_ready_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=TEST_REDIS_URL)

    response = app.test_client().get("/health/ready")

    assert response.status_code == 200
    assert response.json["checks"]["redis"] == "ok"


def test_health_endpoints_are_not_in_the_api_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]

    assert paths
    assert not [path for path in paths if "health" in path]


def test_ready_stays_ok_while_a_released_lease_is_taken_over(make_ready_app):
    app = make_ready_app()
    with app.app_context():
        hold_lease(app).release()  # the leader stopped cleanly a moment ago

    response = app.test_client().get("/health/ready")

    assert response.status_code == 200
    assert response.json["checks"]["scheduler"] == "ok"


def test_ready_passes_on_a_database_migrated_ahead_of_this_code(make_ready_app):
    # Migrate first, then roll out the code: the instances still running the old code
    # meet a revision they do not know, and must keep serving meanwhile.
    app = make_ready_app()
    with app.app_context():
        [head] = db.session.execute(text("SELECT version_num FROM alembic_version")).scalars()
        db.session.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        db.session.commit()
    try:
        response = app.test_client().get("/health/ready")
    finally:
        with app.app_context():  # on PostgreSQL the schema outlives the test
            db.session.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head}
            )
            db.session.commit()

    assert (response.status_code, response.json["checks"]["migrations"]) == (200, "ok")


def test_ready_reports_a_failing_check_instead_of_answering_500(make_ready_app, monkeypatch):
    from sqlalchemy.exc import ProgrammingError

    from backend import health

    def denied():
        raise ProgrammingError(
            "SELECT", {}, Exception("permission denied for table alembic_version")
        )

    monkeypatch.setattr(health, "unapplied_migrations", denied)
    response = make_ready_app().test_client().get("/health/ready")

    assert response.status_code == 503
    assert response.json["checks"]["migrations"].startswith("failed: ")
