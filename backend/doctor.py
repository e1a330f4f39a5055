"""`flask doctor`: the settings that are risky in production, each with its fix.

Run it where the server runs, with its environment and as its user: it checks the
configuration as if for production, whatever ENVIRONMENT says, and exits 1 when it
finds a problem, so a deploy script can stop there. Start-up already refuses some
settings in production (backend/config_loading.py); those stop `flask doctor` too,
with the same one-line message. A check whose settings are gone (their feature
removed) is skipped.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask.helpers import get_debug_flag
from flask_caching.backends import FileSystemCache, SimpleCache
from sqlalchemy.exc import DBAPIError

from backend.config_loading import MIN_JWT_SECRET_LENGTH, MIN_SECRET_LENGTH, secret_problem
from backend.database import unapplied_migrations
from backend.errors import database_problem
from backend.extensions import cache
from backend.proxies import forwarded_for_seen

NEW_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class Problem(NamedTuple):
    topic: str  # the setting, or what is checked
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.problem} — {self.fix}"


@click.command("doctor")
@with_appcontext
def doctor() -> None:
    """List settings that are risky in production; exit 1 if there are any."""
    problems = [problem for check in CHECKS for problem in check(current_app)]
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) to fix before running in production.")
        raise SystemExit(1)
    click.echo("No problems found.")


def debug(app: Flask) -> Iterator[Problem]:
    # Servers take debug from FLASK_DEBUG (the `flask` command overrides the app's own).
    if get_debug_flag():
        yield Problem(
            "DEBUG",
            "on (FLASK_DEBUG, which .flaskenv sets for development): errors propagate as "
            "tracebacks, and `flask run` serves a debugger that runs code",
            "set FLASK_DEBUG=0 where the app runs",
        )


def environment(app: Flask) -> Iterator[Problem]:
    if app.config["ENVIRONMENT"] != "production":
        yield Problem(
            "ENVIRONMENT",
            f"{app.config['ENVIRONMENT']!r}, so production's start-up checks are off",
            "set FLASK_ENVIRONMENT=production",
        )


def weak_secrets(app: Flask) -> Iterator[Problem]:
    """Never shows a value: only whether it is missing, the default, or short."""
    wanted = {
        "SECRET_KEY": MIN_SECRET_LENGTH,
        "AUTH_KEY": MIN_SECRET_LENGTH,
        "JWT_SECRET_KEY": MIN_JWT_SECRET_LENGTH,
    }
    for key, length in wanted.items():
        problem = secret_problem(app.config, key, length)
        if problem:
            yield Problem(key, problem, f"set FLASK_{key} to a random value: {NEW_SECRET}")
    for name, client in app.config["API_CLIENTS"].items():
        if len(str(client["key"])) < MIN_SECRET_LENGTH:
            yield Problem(
                f"API_CLIENTS[{name!r}]",
                f"its key is shorter than {MIN_SECRET_LENGTH} characters",
                f"give it a random key: {NEW_SECRET}",
            )


def auth_disabled(app: Flask) -> Iterator[Problem]:
    if app.config["AUTH_DISABLED"]:
        yield Problem(
            "AUTH_DISABLED",
            "every API request is let in without credentials",
            "remove the setting (production refuses it)",
        )


def api_docs(app: Flask) -> Iterator[Problem]:
    # None means off in production.
    if app.config.get("API_DOCS_ENABLED") and not app.config.get("API_DOCS_AUTH"):
        yield Problem(
            "API_DOCS_ENABLED",
            "the API docs are public, with no password",
            'set FLASK_API_DOCS_AUTH=\'{"username": "...", "password": "..."}\' '
            "or FLASK_API_DOCS_ENABLED=false",
        )


def cors(app: Flask) -> Iterator[Problem]:
    if "*" in app.config["ALLOWED_ORIGINS"]:
        yield Problem(
            "ALLOWED_ORIGINS",
            '"*" lets any website call the API from its visitors\' browsers',
            "list your front ends' origins: FLASK_ALLOWED_ORIGINS='[\"https://app.example.com\"]'",
        )


def per_process_cache(app: Flask) -> Iterator[Problem]:
    if isinstance(cache.cache, SimpleCache | FileSystemCache):
        yield Problem(
            "CACHE_TYPE",
            f"{type(cache.cache).__name__} keeps a cache per process, so workers serve stale "
            "answers (production refuses it)",
            "set FLASK_CACHE_TYPE=RedisCache and FLASK_CACHE_REDIS_URL",
        )


def rate_limit_storage(app: Flask) -> Iterator[Problem]:
    # Where backend/rate_limits.py keeps the counts; absent when they are off.
    storage = app.extensions.get("rate_limit_storage")
    if storage and storage.startswith("memory://"):
        yield Problem(
            "RATELIMIT_STORAGE_URI",
            "memory:// counts per process, so each worker allows the whole limit",
            "use Redis: FLASK_CACHE_TYPE=RedisCache and FLASK_CACHE_REDIS_URL, "
            "or FLASK_RATELIMIT_STORAGE_URI=redis://...",
        )


def unexpected_proxy(app: Flask) -> Iterator[Problem]:
    if app.config["TRUSTED_PROXIES"]:
        return
    seen = forwarded_for_seen()
    if seen:
        yield Problem(
            "TRUSTED_PROXIES",
            f"0, but requests came with X-Forwarded-For (last at {seen}): behind a proxy, "
            "every client gets the proxy's address",
            "set FLASK_TRUSTED_PROXIES to the number of proxies in front (with none, clients "
            "sent the header themselves, and it is ignored)",
        )


def log_file(app: Flask) -> Iterator[Problem]:
    if not app.config["LOG_FILE"]:
        return
    # Where backend/log_setup.py puts it, creating the folders it lacks.
    path = Path(app.root_path).parent / app.config["LOG_FILE"]
    if path.exists():
        writable = path.is_file() and os.access(path, os.W_OK)
    else:
        folder = next(parent for parent in path.parents if parent.exists())
        writable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        yield Problem(
            "LOG_FILE",
            f"{path} cannot be written by this user",
            "let the server's user write it, or set FLASK_LOG_FILE=null to log to the console",
        )


def migrations(app: Flask) -> Iterator[Problem]:
    try:
        missing = unapplied_migrations()
    except DBAPIError as error:
        yield Problem(
            "database",
            f"unreachable: {database_problem(error)}",
            "check DATABASE_URL, and that the database accepts connections from here",
        )
        return
    if missing:
        state, _, command = missing.partition(": run ")  # the message ends with the fix
        yield Problem("migrations", state, f"run {command}")


def error_reporting(app: Flask) -> Iterator[Problem]:
    if "SENTRY_DSN" in app.config and not app.config["SENTRY_DSN"]:
        yield Problem(
            "SENTRY_DSN",
            "unset, so unexpected errors reach only the log",
            "set FLASK_SENTRY_DSN to your Sentry project's DSN",
        )


def mail(app: Flask) -> Iterator[Problem]:
    if "MAIL_URL" not in app.config:
        return
    scheme = (app.config["MAIL_URL"] or "").partition("://")[0]
    problem = {
        "": "unset, so no mail is sent",
        "memory": "memory:// keeps mail in memory, unsent",
        "log": "log:// writes whole messages, reset links included, to the log",
    }.get(scheme)
    if problem:
        yield Problem(
            "MAIL_URL", problem, "set FLASK_MAIL_URL=smtp+starttls://user:password@host:587"
        )


CHECKS: tuple[Callable[[Flask], Iterator[Problem]], ...] = (
    debug,
    environment,
    weak_secrets,
    auth_disabled,
    api_docs,
    cors,
    per_process_cache,
    rate_limit_storage,
    unexpected_proxy,
    log_file,
    migrations,
    error_reporting,
    mail,
)
