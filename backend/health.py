"""Health endpoints for load balancers, orchestrators and uptime checks.

    GET /health         the database answers: 200, or 503
    GET /health/live    the process answers, touching nothing else: restart it on failure
    GET /health/ready   it can serve: send it traffic on 200 only. 503 names the checks that
                        fail: the database answers, it is at the migrations' head, every
                        Redis the app uses answers, and some instance holds the scheduler's
                        lease

They need no API key, and are not in the API document. No check waits long for a dead
server: DATABASE_CONNECT_TIMEOUT for the database, REDIS_TIMEOUT_SECONDS for Redis.
"""

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from alembic.util.exc import CommandError as AlembicError
from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from backend.database import unapplied_migrations
from backend.errors import RETRY_AFTER_SECONDS, database_problem, json_error
from backend.extensions import db
from backend.scheduler.leader import LEASE_NAME, database_clock
from backend.scheduler.models import SchedulerLease

logger = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
NOT_CHECKED = "not checked"
# Nothing to check, which is no reason to keep traffic away.
NOT_CONFIGURED = "not configured"
NO_JOBS = "no jobs"
PASSING = {OK, NOT_CONFIGURED, NO_JOBS}
REDIS_TIMEOUT_SECONDS = 1.0

health = Blueprint("health", __name__)


@health.record_once
def connect_redis(state: BlueprintSetupState) -> None:
    """A client for each Redis the app uses; each connects at its first check."""
    state.app.extensions["health_redis"] = [
        (setting, redis_client(url)) for setting, url in redis_urls(state.app.config).items()
    ]


def redis_urls(config: dict) -> dict[str, str]:
    """The setting that names each Redis: the cache's, and the rate limits' when they keep
    their counts elsewhere (their default is the cache's)."""
    urls = {}
    if config["CACHE_TYPE"].endswith("RedisCache") and config["CACHE_REDIS_URL"]:
        urls["CACHE_REDIS_URL"] = config["CACHE_REDIS_URL"]
    limits_url = config.get("RATELIMIT_STORAGE_URI")
    if (
        config.get("RATELIMIT_ENABLED")
        and limits_url
        and urlsplit(limits_url).scheme in ("redis", "rediss")
        and limits_url not in urls.values()
    ):
        urls["RATELIMIT_STORAGE_URI"] = limits_url
    return urls


def redis_client(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        # redis-py retries by default, which would multiply the timeout.
        retry=Retry(NoBackoff(), 0),
    )


@health.get("/health")
def check_health() -> Response:
    """200 while the database answers, 503 while it does not."""
    if database_state() != OK:
        return unavailable("The database is unreachable.", database=UNREACHABLE)
    return jsonify(status=OK, database=OK)


@health.get("/health/live")
def check_live() -> Response:
    """200 while the process answers. It touches nothing else: a database outage must not
    have every instance restarted."""
    return jsonify(status=OK)


@health.get("/health/ready")
def check_ready() -> Response:
    """200 when every check passes; 503 naming those that fail."""
    checks = {"database": database_state()}
    checks["migrations"] = contained(migrations_state) if checks["database"] == OK else NOT_CHECKED
    # The lease table is only there once the migrations are.
    checks["scheduler"] = contained(scheduler_state) if checks["migrations"] == OK else NOT_CHECKED
    checks["redis"] = redis_state()
    # A check not made is not named: the one before it failed, and says why.
    failing = [name for name, state in checks.items() if state not in (*PASSING, NOT_CHECKED)]
    if failing:
        return unavailable(f"Not ready: {', '.join(failing)}.", checks=checks)
    return jsonify(status=OK, checks=checks)


def unavailable(message: str, **body: object) -> Response:
    """A 503 in the app's error shape, with the health body's "status"."""
    response = json_error(message, 503, status="unavailable", **body)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def database_state() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        problem = database_problem(error) if isinstance(error, DBAPIError) else str(error)
        logger.warning("Health check: the database is unreachable: %s", problem)
        return UNREACHABLE
    return OK


def contained(check: Callable[[], str]) -> str:
    """A check that fails on a database error (a permission, a lock timeout) reports it:
    a probe never answers 500."""
    try:
        return check()
    except (SQLAlchemyError, AlembicError) as error:
        db.session.rollback()
        problem = database_problem(error) if isinstance(error, DBAPIError) else str(error)
        logger.warning("Health check: %s failed: %s", check.__name__, problem)
        return f"failed: {problem}"


def migrations_state() -> str:
    problem = unapplied_migrations()
    if problem:
        logger.warning("Health check: %s", problem)
        return problem
    return OK


def scheduler_state() -> str:
    """Whether an instance, this one or another, has renewed the lease within TTL +
    INTERVAL: the longest a dead leader takes to be replaced, so a handover never fails
    the check (backend/scheduler/README.md, "The leader")."""
    config = current_app.config
    if not config["JOBS"] and not config["SCHEDULER_API_ENABLED"]:
        return NO_JOBS
    # expires_at is TTL after the last renewal, by the database's clock.
    expired_for = db.session.scalar(
        select(database_clock(db.engine) - SchedulerLease.expires_at).where(
            SchedulerLease.name == LEASE_NAME
        )
    )
    interval = config["SCHEDULER_LEASE_INTERVAL"]
    if expired_for is not None and expired_for <= interval:
        return OK
    window = config["SCHEDULER_LEASE_TTL"] + interval
    problem = (
        f"no instance has held the lease in the last {window} s: the jobs are not running "
        "(start one with SCHEDULER_ENABLED, or `flask scheduler serve`)"
    )
    logger.warning("Health check: scheduler: %s", problem)
    return problem


def redis_state() -> str:
    clients = current_app.extensions["health_redis"]
    if not clients:
        return NOT_CONFIGURED
    for setting, client in clients:
        try:
            client.ping()
        except RedisError as error:
            # The error names the host and port, never the URL's password.
            logger.warning("Health check: the Redis of %s is unreachable: %s", setting, error)
            return UNREACHABLE
    return OK
