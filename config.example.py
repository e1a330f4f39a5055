"""Local settings: copy to backend/config.py (gitignored), then uncomment what you change.

Every key, with its default and what it does, is in backend/settings.py; set here only
what differs. Any key can also be set in the environment as FLASK_<KEY> (JSON values
are parsed: FLASK_API_CLIENTS='{"ci": {"key": "...", "scopes": []}}'), the environment
as ENVIRONMENT and the database as DATABASE_URL. Precedence, lowest first:
settings.py, this file, environment variables. BACKEND_CONFIG_FILE names another file.

Copied unchanged, this file changes nothing: production still refuses the committed
development secrets until real ones are set.
"""

# ENVIRONMENT = "production"

# Generate each with: python -c "import secrets; print(secrets.token_urlsafe(32))"
# SECRET_KEY = "..."
# AUTH_KEY = "..."
# JWT_SECRET_KEY = "..."   (32 characters at least)

# More API clients, each with only the scopes it needs:
# API_CLIENTS = {
#     "reporting": {"key": "...", "scopes": ["users:read", "items:read"]},
# }

# People's accounts: close self-registration, add a role between user and admin.
# REGISTRATION_OPEN = False
# ROLES = ["user", "support", "editor", "admin"]
# ROLE_SCOPES = {"user": ["me:read", "me:write", "items:read", "items:write"],
#                "support": ["users:read", "audit:read"], "editor": [], "admin": ["*"]}
# PASSWORD_RESET_URL = "https://app.example.com/reset-password?token={token}"

# Outgoing mail. Percent-encode special characters in the password (@ is %40).
# MAIL_URL = "smtp+starttls://user:password@smtp.example.com:587"
# MAIL_FROM = "Example <no-reply@example.com>"

# SQLALCHEMY_DATABASE_URI = "postgresql://user:password@127.0.0.1:5432/backend"

# CACHE_TYPE = "RedisCache"
# CACHE_REDIS_URL = "redis://127.0.0.1:6379/0"

# ALLOWED_ORIGINS = ["http://localhost:3000"]

# Behind one reverse proxy (nginx, a load balancer) that sets X-Forwarded-For:
# TRUSTED_PROXIES = 1

# LOG_LEVEL = "DEBUG"
# Query parameters whose values the log shows (all others are "***"):
# LOG_QUERY_VALUES = ["limit", "offset", "search"]

# Add jobs to the committed ones (assigning JOBS alone would replace them):
# from backend.settings import JOBS
# JOBS = [*JOBS, {"id": "my_job", "func": "backend.features.x.jobs:my_job",
#                 "trigger": "interval", "minutes": 5}]

# Operations (README, "Operations"): Sentry, rate limits, client versions, metrics.
# SENTRY_DSN = "https://<key>@<host>/<project>"
# SENTRY_RELEASE = "2026.11.30"
# Change one limit without restating the others:
# from backend.settings import RATE_LIMITS
# RATE_LIMITS = {**RATE_LIMITS, "login": "20 per minute"}
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/1"
# CLIENT_VERSIONS_REFRESH_SECONDS = 5
# METRICS_SCOPE = "metrics:read"
