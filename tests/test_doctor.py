"""`flask doctor`: one line per risky setting, with its fix, and exit status 1."""

import logging
import os

import flask_migrate
import pytest
import sentry_sdk

from tests.conftest import PRODUCTION
from tests.test_caching import TEST_REDIS_URL, redis_config

# Production settings with nothing for the doctor to report (the database aside:
# `ready` stamps it at the migrations' head).
HEALTHY = {
    **PRODUCTION,
    "SENTRY_DSN": "http://publickey@127.0.0.1:9/1",
    "MAIL_URL": "smtp+starttls://127.0.0.1:587",
    "RATELIMIT_ENABLED": False,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Only the config each test gives: no FLASK_* or backend/config.py from the shell."""
    for name in list(os.environ):
        if name.startswith("FLASK_") or name in {"DATABASE_URL", "ENVIRONMENT"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("BACKEND_CONFIG_FILE", "/nonexistent/config.py")
    yield monkeypatch
    # HEALTHY's DSN sets up Sentry's client, which belongs to the process.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def ready(make_app):
    """An app on a database at the migrations' head, with these settings over HEALTHY."""

    def make(**overrides):
        app = make_app(**{**HEALTHY, **overrides})
        with app.app_context():
            flask_migrate.stamp()
        return app

    return make


def doctor(app):
    """(exit status, the problem lines by the setting or topic they start with)."""
    result = app.test_cli_runner().invoke(args=["doctor"])
    lines = result.output.splitlines()
    problems = {line.split(":")[0]: line for line in lines if " — " in line}
    summary = f"{len(problems)} problem(s) to fix before running in production."
    assert lines[-1] == (summary if problems else "No problems found.")
    return result.exit_code, problems


def test_production_settings_pass(ready):
    result = ready().test_cli_runner().invoke(args=["doctor"])

    assert (result.exit_code, result.output) == (0, "No problems found.\n")


REDIS_OR_MEMORY = (
    "use Redis: FLASK_CACHE_TYPE=RedisCache and FLASK_CACHE_REDIS_URL, "
    "or FLASK_RATELIMIT_STORAGE_URI=redis://..."
)
SMTP = "set FLASK_MAIL_URL=smtp+starttls://user:password@host:587"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"ENVIRONMENT": "testing"},
            "ENVIRONMENT: 'testing', so production's start-up checks are off "
            "— set FLASK_ENVIRONMENT=production",
        ),
        (
            {"ENVIRONMENT": "development", "AUTH_DISABLED": True},
            "AUTH_DISABLED: every API request is let in without credentials "
            "— remove the setting (production refuses it)",
        ),
        (
            {"API_DOCS_ENABLED": True},
            "API_DOCS_ENABLED: the API docs are public, with no password — set "
            'FLASK_API_DOCS_AUTH=\'{"username": "...", "password": "..."}\' '
            "or FLASK_API_DOCS_ENABLED=false",
        ),
        (
            {"ALLOWED_ORIGINS": ["https://app.example.com", "*"]},
            'ALLOWED_ORIGINS: "*" lets any website call the API from its visitors\' browsers '
            "— list your front ends' origins: "
            "FLASK_ALLOWED_ORIGINS='[\"https://app.example.com\"]'",
        ),
        (
            {"ENVIRONMENT": "testing", "CACHE_TYPE": "SimpleCache"},
            "CACHE_TYPE: SimpleCache keeps a cache per process, so workers serve stale answers "
            "(production refuses it) — set FLASK_CACHE_TYPE=RedisCache and FLASK_CACHE_REDIS_URL",
        ),
        (
            {"RATELIMIT_ENABLED": True},  # no Redis cache to count in: memory
            "RATELIMIT_STORAGE_URI: memory:// counts per process, so each worker allows the "
            f"whole limit — {REDIS_OR_MEMORY}",
        ),
        (
            {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"},
            "RATELIMIT_STORAGE_URI: memory:// counts per process, so each worker allows the "
            f"whole limit — {REDIS_OR_MEMORY}",
        ),
        (
            {"SENTRY_DSN": None},
            "SENTRY_DSN: unset, so unexpected errors reach only the log "
            "— set FLASK_SENTRY_DSN to your Sentry project's DSN",
        ),
        ({"MAIL_URL": None}, f"MAIL_URL: unset, so no mail is sent — {SMTP}"),
        ({"MAIL_URL": "memory://"}, f"MAIL_URL: memory:// keeps mail in memory, unsent — {SMTP}"),
        (
            {"ENVIRONMENT": "testing", "MAIL_URL": "log://"},
            f"MAIL_URL: log:// writes whole messages, reset links included, to the log — {SMTP}",
        ),
    ],
)
def test_each_risky_setting_is_reported_with_its_fix(ready, overrides, expected):
    status, problems = doctor(ready(**overrides))

    assert status == 1
    assert problems[expected.split(":")[0]] == expected


def test_debug_is_reported(ready, clean_env):
    clean_env.setenv("FLASK_DEBUG", "1")

    assert doctor(ready()) == (
        1,
        {
            "DEBUG": "DEBUG: on (FLASK_DEBUG, which .flaskenv sets for development): errors "
            "propagate as tracebacks, and `flask run` serves a debugger that runs code "
            "— set FLASK_DEBUG=0 where the app runs"
        },
    )


def test_debug_turned_off_passes(ready, clean_env):
    clean_env.setenv("FLASK_DEBUG", "0")

    assert doctor(ready()) == (0, {})


def test_default_and_short_secrets_are_reported_without_their_values(ready):
    app = ready(
        ENVIRONMENT="testing",
        SECRET_KEY="dev-secret-key-change-me",
        AUTH_KEY="short-auth-key",
        JWT_SECRET_KEY="a-jwt-secret-of-28-characters",
        API_CLIENTS={"reporting": {"key": "short-key", "scopes": []}},
    )
    result = app.test_cli_runner().invoke(args=["doctor"])
    status, problems = doctor(app)

    assert status == 1
    assert problems["SECRET_KEY"].startswith("SECRET_KEY: missing or still the development default")
    assert problems["AUTH_KEY"].startswith("AUTH_KEY: shorter than 16 characters")
    assert problems["JWT_SECRET_KEY"].startswith("JWT_SECRET_KEY: shorter than 32 characters")
    assert problems["API_CLIENTS['reporting']"].startswith(
        "API_CLIENTS['reporting']: its key is shorter than 16 characters"
    )
    for value in ("dev-secret-key-change-me", "short-auth-key", "a-jwt-secret", "short-key"):
        assert value not in result.output


@pytest.mark.skipif(not TEST_REDIS_URL, reason="TEST_REDIS_URL is not set: no Redis to test with")
def test_rate_limits_counted_in_the_caches_redis_pass(ready):
    app = ready(RATELIMIT_ENABLED=True, **redis_config())

    assert doctor(app) == (0, {})


def test_forwarded_for_without_trusted_proxies_is_reported(ready, caplog):
    # SimpleCache: this process's requests and its doctor share the note.
    app = ready(ENVIRONMENT="testing", CACHE_TYPE="SimpleCache")
    client = app.test_client()
    assert "TRUSTED_PROXIES" not in doctor(app)[1]

    with caplog.at_level(logging.WARNING, logger="backend.proxies"):
        for _ in range(2):
            client.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
    status, problems = doctor(app)

    assert status == 1
    assert problems["TRUSTED_PROXIES"].startswith(
        "TRUSTED_PROXIES: 0, but requests came with X-Forwarded-For (last at "
    )
    assert problems["TRUSTED_PROXIES"].endswith(
        "): behind a proxy, every client gets the proxy's address — set FLASK_TRUSTED_PROXIES "
        "to the number of proxies in front (with none, clients sent the header themselves, "
        "and it is ignored)"
    )
    [warning] = [r for r in caplog.records if r.name == "backend.proxies"]  # once per process
    assert "203.0.113.9" not in warning.getMessage()


@pytest.mark.skipif(not TEST_REDIS_URL, reason="TEST_REDIS_URL is not set: no Redis to test with")
def test_forwarded_for_seen_by_a_worker_reaches_the_doctor_through_redis(ready):
    shared = redis_config()
    ready(**shared).test_client().get("/health", headers={"X-Forwarded-For": "203.0.113.9"})

    assert "TRUSTED_PROXIES" in doctor(ready(**shared))[1]


def test_forwarded_for_with_trusted_proxies_passes(ready):
    app = ready(ENVIRONMENT="testing", CACHE_TYPE="SimpleCache", TRUSTED_PROXIES=1)
    app.test_client().get("/health", headers={"X-Forwarded-For": "203.0.113.9"})

    assert "TRUSTED_PROXIES" not in doctor(app)[1]


def test_log_file_that_cannot_be_written_is_reported(ready, tmp_path):
    app = ready(LOG_FILE=str(tmp_path))  # a folder where the file should be

    assert doctor(app) == (
        1,
        {
            "LOG_FILE": f"LOG_FILE: {tmp_path} cannot be written by this user — let the server's "
            "user write it, or set FLASK_LOG_FILE=null to log to the console"
        },
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_log_file_in_a_read_only_folder_is_reported(ready, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o500)
    app = ready(LOG_FILE=str(folder / "backend.log"))

    assert "LOG_FILE" in doctor(app)[1]


def test_writable_log_file_passes(ready, tmp_path):
    assert doctor(ready(LOG_FILE=str(tmp_path / "new" / "backend.log"))) == (0, {})


def test_pending_migrations_are_reported_until_upgraded(make_app, tmp_path):
    app = make_app(**HEALTHY, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'new.db'}")

    status, problems = doctor(app)
    assert status == 1
    assert problems["migrations"].startswith("migrations: the database is at no revision, ")
    assert problems["migrations"].endswith(" — run `flask db upgrade`")

    with app.app_context():
        flask_migrate.upgrade()
    assert doctor(app) == (0, {})


def test_unreachable_database_is_reported(make_app):
    app = make_app(**HEALTHY, SQLALCHEMY_DATABASE_URI="sqlite:////nonexistent/backend.db")

    assert doctor(app) == (
        1,
        {
            "database": "database: unreachable: unable to open database file — check "
            "DATABASE_URL, and that the database accepts connections from here"
        },
    )
