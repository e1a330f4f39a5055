"""Local settings: copy to backend/config.py (gitignored) and edit.

Every key below has a committed default in backend/settings.py. Any key can also be
set in the environment as FLASK_<KEY> (JSON values are parsed, e.g.
FLASK_API_CLIENTS='{"ci": {"key": "..."}}'), and the database as DATABASE_URL.
Precedence, lowest first: settings.py, this file, FLASK_* variables, DATABASE_URL.
A different file can be named in BACKEND_CONFIG_FILE.

Generate secrets with: python -c "import secrets; print(secrets.token_urlsafe(32))"
"""

# development | testing | production. Production refuses to start unless
# SECRET_KEY and AUTH_KEY are set, at least 16 characters, and not the defaults.
ENVIRONMENT = "development"

# Signs sessions and tokens.
SECRET_KEY = "replace-with-a-long-random-value"

# Header that carries the API key.
AUTH_HEADER = "X-AUTH-API-KEY"

# The key of the client named "default".
AUTH_KEY = "replace-with-a-long-random-value"

# More clients, by name, each with the scopes it may use (the "default" client has
# them all): users:read, users:write, items:read, items:write. The name of the caller
# is in flask.g.api_client.
API_CLIENTS = {
    # "reporting": {"key": "another-long-random-value", "scopes": ["users:read", "items:read"]},
}

# Development only: let every request in without a key (announced in the log at start).
# Ignored outside development; production refuses to start with it.
AUTH_DISABLED = False

# OpenAPI document and docs pages (/api/v1/openapi.json, /docs, /redoc).
# None: on in development and testing, off in production.
API_DOCS_ENABLED = None
# Ask for a username and password (HTTP Basic) on the docs, e.g. when on in production.
API_DOCS_AUTH = None  # {"username": "docs", "password": "a-long-random-value"}
API_TITLE = "Backend API"
API_VERSION = "1.0.0"
API_DESCRIPTION = "Users and the items they own. Every endpoint needs an API key."

# SQLite file in instance/ by default. PostgreSQL (psycopg2):
# SQLALCHEMY_DATABASE_URI = "postgresql://user:password@127.0.0.1:5432/backend"
SQLALCHEMY_DATABASE_URI = None

# Seconds to wait for the database to accept a connection before answering 503.
DATABASE_CONNECT_TIMEOUT = 3

# Browser origins allowed to call the API (CORS); none by default.
ALLOWED_ORIGINS = [
    # "http://localhost:3000",
]

# Rotating log file shared by all workers (relative to the project root); None for console only.
LOG_FILE = "logs/backend.log"
LOG_LEVEL = "INFO"
# Rotated at this size, keeping this many old files; either at 0 leaves it to logrotate.
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUP_COUNT = 5

# Cache (Flask-Caching). SimpleCache is one cache per process: for a single development
# server only, refused in production. RedisCache stores JSON in Redis, shared by every
# worker and host; NullCache turns caching off.
CACHE_TYPE = "SimpleCache"
# CACHE_TYPE = "RedisCache"
# CACHE_REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_REDIS_URL = None
# Seconds an entry lives; also the longest an answer can stay stale after a write made
# while Redis was unreachable.
CACHE_DEFAULT_TIMEOUT = 30
CACHE_KEY_PREFIX = "backend:"
# Seconds to wait for Redis before answering from the database, and to skip it after.
CACHE_SOCKET_TIMEOUT = 0.1
CACHE_RETRY_AFTER = 5

# Scheduled jobs (backend/scheduler), in Flask-APScheduler's format; `func` is any
# importable "module:function" and runs in an app context. Jobs whose definition is
# unchanged keep their next run time across restarts.
JOBS = [
    {
        "id": "log_item_counts",
        "func": "backend.features.items.jobs:log_item_counts",
        "trigger": "interval",
        "minutes": 10,
    },
    {
        "id": "prune_job_runs",
        "func": "backend.scheduler.jobs:prune_job_runs",
        "kwargs": {"days": 30},
        "trigger": "cron",
        "hour": 3,
        "minute": 30,
    },
]
SCHEDULER_TIMEZONE = "UTC"
# Every missed time is caught up (coalesce=False, no misfire limit), none dropped.
SCHEDULER_JOB_DEFAULTS = {"coalesce": False, "max_instances": 1, "misfire_grace_time": None}
# Whether this process takes part in running jobs: False for web workers when
# `flask scheduler serve` runs them in a process of its own.
SCHEDULER_ENABLED = True
# A dead leader is replaced within about TTL + INTERVAL seconds.
SCHEDULER_LEASE_TTL = 30
SCHEDULER_LEASE_INTERVAL = 10
# HTTP API for jobs (off by default), for keys with SCHEDULER_API_SCOPE; it may only
# schedule the functions named in JOBS or in SCHEDULER_ALLOWED_FUNCS.
SCHEDULER_API_ENABLED = False
SCHEDULER_API_PREFIX = "/scheduler"
SCHEDULER_API_SCOPE = "scheduler:admin"
SCHEDULER_ALLOWED_FUNCS = []

# Largest request body accepted, in bytes; larger bodies get 413.
MAX_CONTENT_LENGTH = 1024 * 1024

# werkzeug.security method used for password hashes.
PASSWORD_HASH_METHOD = "scrypt"
