"""Every configuration key with its committed default, safe for local development.

Loaded first; `backend/config.py`, `FLASK_*` environment variables, `DATABASE_URL`
and the dict given to `create_app` override these, in that order
(see `backend/config_loading.py`). `config.example.py` documents the same keys
for users who copy it to `backend/config.py`.
"""

# development | testing | production. Production refuses to start with the
# development secrets below.
ENVIRONMENT = "development"

# Signs sessions and tokens. Must be replaced in production.
SECRET_KEY = "dev-secret-key-change-me"

# Header that carries the API key.
AUTH_HEADER = "X-AUTH-API-KEY"

# The key of the "default" client. Must be replaced in production.
AUTH_KEY = "dev-auth-key-change-me"

# More clients, by name, each with the scopes it may use:
# {"reporting": {"key": "...", "scopes": ["users:read", "items:read"]}}
API_CLIENTS: dict[str, dict] = {}

# Development only: let every request in without a key. Refused in production.
AUTH_DISABLED = False

# People sign in with email and password (POST /api/v1/auth/login) and send the access
# token as "Authorization: Bearer ...". Roles, lowest first: each role has the scopes
# of its own and of every role below it. "*" is every scope.
ROLES = ["user", "editor", "admin"]
ROLE_SCOPES: dict[str, list[str]] = {
    "user": ["me:read", "me:write", "items:read", "items:write"],
    # Editors also change and delete items that others own (backend/features/items).
    "editor": [],
    "admin": ["*"],
}
# Anyone may create an account with POST /api/v1/auth/register; False answers 403.
REGISTRATION_OPEN = True

# Signs access, refresh and password-reset tokens. Must be replaced in production.
JWT_SECRET_KEY = "dev-jwt-secret-change-me-in-production"
# Seconds an access token works, and a refresh token (each refresh starts it again).
ACCESS_TOKEN_TTL = 15 * 60
REFRESH_TOKEN_TTL = 30 * 24 * 3600
# Seconds the shared cache keeps a session's state between database checks: also the
# longest a revocation made while Redis was unreachable from the revoking worker (and
# only then) can go unseen by workers that still reach it (README: "Auth"). 0 asks the
# database at every request.
SESSION_CACHE_SECONDS = 10

# The link mailed for a password reset; {token} is replaced by the token.
PASSWORD_RESET_URL = "http://localhost:3000/reset-password?token={token}"
PASSWORD_RESET_TTL = 30 * 60

# Failed logins (and reset requests) allowed per email and per client IP in a window
# of seconds, counted over every worker and host; more get 429.
LOGIN_ATTEMPTS_PER_EMAIL = 5
LOGIN_ATTEMPTS_PER_IP = 5
LOGIN_ATTEMPTS_WINDOW = 15 * 60

# argon2id cost (OWASP's recommendation: 19 MiB, 2 passes, 1 lane; about 21 ms per
# hash on one core). Hashes made with other values are upgraded at the next login.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST = 19 * 1024
ARGON2_PARALLELISM = 1

# OpenAPI document and docs pages under /api/v1; None means on except in production.
API_DOCS_ENABLED: bool | None = None
# {"username": "...", "password": "..."} to ask for credentials (HTTP Basic) on them.
API_DOCS_AUTH: dict[str, str] | None = None
API_TITLE = "Backend API"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "Users and the items they own. Services call it with an API key; people sign in "
    "at /auth/login and send a bearer token."
)

# None means a SQLite file in the instance folder: instance/backend.db.
SQLALCHEMY_DATABASE_URI: str | None = None

# Browser origins allowed to call the API, e.g. ["https://app.example.com"].
ALLOWED_ORIGINS: list[str] = []

# Rotating log file shared by every worker; None logs to the console only.
LOG_FILE: str | None = "logs/backend.log"
LOG_LEVEL = "INFO"
# Query parameters whose values the log shows; every other value is "***".
LOG_QUERY_VALUES = ["limit", "offset"]
# Rotated at this size, keeping this many old files; either at 0 leaves it to logrotate.
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUP_COUNT = 5

# Flask-Caching. SimpleCache: one cache per process, for development (refused in
# production). RedisCache with CACHE_REDIS_URL (redis://host:6379/0) for real use;
# NullCache turns caching off. See backend/caching.py.
CACHE_TYPE = "SimpleCache"
CACHE_REDIS_URL: str | None = None
# NullCache is a deliberate choice here: no warning from Flask-Caching about it.
CACHE_NO_NULL_WARNING = True
# Seconds an entry lives: also the longest a write made while Redis was unreachable
# can leave an answer stale once Redis is back.
CACHE_DEFAULT_TIMEOUT = 30
CACHE_KEY_PREFIX = "backend:"
# Seconds to wait for Redis before treating the cache as down, and to leave it alone then.
CACHE_SOCKET_TIMEOUT = 0.1
CACHE_RETRY_AFTER = 5

# Scheduled jobs (backend/scheduler), in Flask-APScheduler's format. `func` is any
# importable "module:function"; it runs in an app context.
JOBS: list[dict] = [
    {
        "id": "log_item_counts",
        "func": "backend.features.items.jobs:log_item_counts",
        "trigger": "interval",
        "minutes": 10,
    },
    {
        "id": "prune_sessions",
        "func": "backend.features.accounts.jobs:prune_sessions",
        "trigger": "cron",
        "hour": 3,
        "minute": 10,
    },
    {
        "id": "prune_audit_events",
        "func": "backend.features.audit.jobs:prune_audit_events",
        "kwargs": {"days": 90},
        "trigger": "cron",
        "hour": 3,
        "minute": 20,
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
# coalesce=False and no misfire limit: every missed time is caught up, none dropped.
SCHEDULER_JOB_DEFAULTS = {"coalesce": False, "max_instances": 1, "misfire_grace_time": None}
# Whether this process takes part in running jobs; False for web workers when a
# `flask scheduler serve` process runs them instead.
SCHEDULER_ENABLED = True
# Seconds a leader's lease lasts, and between renewals: a dead leader is replaced
# within about TTL + INTERVAL seconds.
SCHEDULER_LEASE_TTL = 30
SCHEDULER_LEASE_INTERVAL = 10
# Flask-APScheduler's HTTP API for jobs, under SCHEDULER_API_PREFIX, for keys with
# SCHEDULER_API_SCOPE. It may only schedule functions named in JOBS or listed here.
SCHEDULER_API_ENABLED = False
SCHEDULER_API_PREFIX = "/scheduler"
SCHEDULER_API_SCOPE = "scheduler:admin"
SCHEDULER_ALLOWED_FUNCS: list[str] = []

# How many reverse proxies in front of the app append to X-Forwarded-For (nginx, a load
# balancer): 1 behind one. 0 takes the connection's address as the client's; behind a
# proxy that would give every client the proxy's address (backend/proxies.py).
TRUSTED_PROXIES = 0

# Largest request body accepted; bigger ones get 413.
MAX_CONTENT_LENGTH = 1024 * 1024

# Seconds to wait for the database to accept a connection before answering 503.
DATABASE_CONNECT_TIMEOUT = 3

# Outgoing mail (backend/mail). None: written to the log and to MAIL_FOLDER in
# development, not sent at all elsewhere (with a warning at start). Otherwise
# smtp://user:password@host:25, smtp+starttls://...:587 or smtp://...:587?starttls=true
# (STARTTLS), smtps://...:465 (TLS from the start); memory:// keeps messages in memory (tests).
MAIL_URL: str | None = None
MAIL_FROM = "Backend <no-reply@localhost>"
# Where the development backend writes each message as an .eml file.
MAIL_FOLDER = "instance/mail"
# A CA bundle to trust for the SMTP server's certificate; None trusts the system's.
MAIL_TLS_CA_FILE: str | None = None
# Seconds to wait for the SMTP server; a failed send is tried this many times in all.
MAIL_TIMEOUT = 10
MAIL_SEND_ATTEMPTS = 3

# --- Operations: each block is one module or folder to delete with its lines here ---

# Request ids (backend/request_ids.py). An incoming header of 1 to 128 letters, digits
# and ._:- is kept; any other value, or none, gets a new id. Returned in the same header.
# None turns request ids off.
REQUEST_ID_HEADER: str | None = "X-Request-ID"

# Prometheus metrics at GET /metrics (backend/metrics.py) for API keys with the scope
# METRICS_SCOPE, and admins. Under gunicorn, every worker writes its figures to
# a directory: METRICS_DIR, emptied at start, or a temporary one (gunicorn.conf.py).
METRICS_ENABLED = True
METRICS_SCOPE = "metrics:read"

# Rate limits (backend/rate_limits.py, Flask-Limiter), per caller: the API client, the
# signed-in user, or the IP address when anonymous. Limits in Flask-Limiter's notation;
# "default" applies to every request, the others to the endpoints that name them
# (instead of the default). Change one with FLASK_RATE_LIMITS__login="20 per minute".
RATELIMIT_ENABLED = True
RATE_LIMITS = {
    "default": "300 per minute",
    "login": "10 per minute",
    "password_reset": "5 per 15 minutes",
    "register": "20 per hour",
}
# Where the counts live: None means the cache's Redis (CACHE_REDIS_URL) when there is
# one, else memory:// (one count per process: development only). Keys go under
# CACHE_KEY_PREFIX; Redis is waited for CACHE_SOCKET_TIMEOUT seconds at most.
RATELIMIT_STORAGE_URI: str | None = None

# Clients send their app's version in this header (backend/client_versions): unsupported
# versions get 426, deprecated ones Deprecation and Sunset headers. Managed with
# `flask versions`; each worker rereads the table at most this many seconds apart.
CLIENT_VERSIONS_ENABLED = True
CLIENT_VERSION_HEADER = "X-Version"
CLIENT_VERSIONS_REFRESH_SECONDS = 5

# Security headers on every response (backend/security_headers.py). HSTS is sent in
# production on requests that came over HTTPS (behind a proxy: TRUSTED_PROXIES).
SECURITY_HEADERS_ENABLED = True
HSTS_SECONDS = 365 * 24 * 3600

# Error reporting to Sentry (backend/error_reporting.py); None turns it off. The release
# defaults to API_VERSION.
SENTRY_DSN: str | None = None
SENTRY_RELEASE: str | None = None
# Share of requests traced for performance monitoring; 0 sends errors only.
SENTRY_TRACES_SAMPLE_RATE = 0.0
