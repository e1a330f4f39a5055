"""Rate limits per caller (Flask-Limiter): a default for every request, tighter named ones
where guessing or spamming is the danger (README: "Rate limits").

    @registry.handles(...)
    @rate_limit("login")        counts against RATE_LIMITS["login"] instead of the default
    def login(): ...

The caller is the API client, the signed-in user, or else the IP address, read only from
credentials that verify (a known key, a token whose signature checks): made-up ones
cannot buy fresh counts. Counts live in Redis, shared by every worker and host, at one
round trip per request. While Redis is unreachable each worker counts on its own
(Flask-Limiter's in-memory fallback), after one warning, and tries Redis again after
1, 2, 4, ... 32 seconds, then 1 again. Over a limit: 429 with Retry-After and X-RateLimit-* headers.
Exempt: the health checks, and CORS preflights (browsers send them without credentials).
"""

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import parse_many
from limits.errors import StorageError
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.auth import BEARER, find_client
from backend.config_loading import ConfigError
from backend.errors import json_error
from backend.extensions import cache
from backend.features.accounts import tokens
from backend.health import health
from backend.redis_cache import SafeRedisCache

logger = logging.getLogger(__name__)

DEFAULT = "default"
Handler = TypeVar("Handler", bound=Callable[..., Any])


def rate_limit(name: str) -> Callable[[Handler], Handler]:
    """Counts the handler's requests against RATE_LIMITS[name] instead of the default.

    Goes under `registry.handles`: rebar's view wraps the handler with functools.wraps,
    which copies the mark onto it.
    """

    def mark(handler: Handler) -> Handler:
        handler.rate_limit = name  # type: ignore[attr-defined]
        return handler

    return mark


def init_rate_limits(app: Flask) -> None:
    config = app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    limits = _checked(config["RATE_LIMITS"], _names_used(app))
    storage_uri = _storage_uri(app)
    app.extensions["rate_limit_storage"] = storage_uri  # `flask doctor` reads it
    # One limiter per app, each with its own storage: Flask-Limiter keeps it on the instance.
    limiter = Limiter(
        caller_key,
        application_limits=[
            # One count per caller and limit name, shared by the endpoints that use it.
            ApplicationLimit(lambda: limits[_limit_name()], scope=lambda _: _limit_name())
        ],
        storage_uri=storage_uri,
        storage_options=_storage_options(config, storage_uri),
        in_memory_fallback_enabled=True,
        # The standard headers on every response would cost two more round trips each:
        # sent on 429s only, below.
        headers_enabled=False,
        # Requests to no route count too (Flask-Limiter skips them by default).
        request_identifier=lambda: request.endpoint or "unrouted",
    )
    limiter.exempt(health)
    limiter.request_filter(lambda: request.method == "OPTIONS")
    limiter.init_app(app)

    def too_many_requests(error: RateLimitExceeded) -> Response:
        return _too_many_requests(limiter, error)

    app.register_error_handler(RateLimitExceeded, too_many_requests)
    # Its line per refused request repeats the request log's; its warnings stay.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    if storage_uri.startswith("memory:") and config["ENVIRONMENT"] == "production":
        logger.warning(
            "Rate limits are counted by each worker on its own (memory://), so a caller "
            "gets up to one limit per worker. Set FLASK_CACHE_TYPE=RedisCache and "
            "FLASK_CACHE_REDIS_URL, or FLASK_RATELIMIT_STORAGE_URI, to share the counts."
        )


def caller_key() -> str:
    """Who is calling, from credentials that verify; anyone else by address. No database:
    a revoked token still names its user, whose count it is."""
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        claims = tokens.read(authorization[len(BEARER) :].strip(), tokens.ACCESS)
        if claims is not None:
            return f"user:{claims['sub']}"
    key = request.headers.get(current_app.config["AUTH_HEADER"])
    client = find_client(key) if key else None
    if client is not None:
        return f"client:{client.name}"
    return f"ip:{request.remote_addr}"


def _limit_name() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "rate_limit", DEFAULT)


def _names_used(app: Flask) -> set[str]:
    """The limits the app's endpoints count against: call after they are registered."""
    return {DEFAULT} | {
        view.rate_limit for view in app.view_functions.values() if hasattr(view, "rate_limit")
    }


def _checked(limits: object, names_used: set[str]) -> dict[str, str]:
    """Refuses limits Flask-Limiter cannot read, and a missing one that endpoints name."""
    if not isinstance(limits, dict):
        raise ConfigError('Config error: RATE_LIMITS must look like {"default": "300 per minute"}.')
    for name in sorted(names_used - limits.keys()):
        raise ConfigError(
            f"Config error: RATE_LIMITS has no {name!r} limit, which endpoints use. "
            f"To change one limit only, set FLASK_RATE_LIMITS__{name}."
        )
    for name, value in limits.items():
        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(
                f"Config error: RATE_LIMITS[{name!r}] is {value!r}; expected a limit such "
                'as "10 per minute" or "5/second; 100/hour".'
            ) from None
    return limits


def _storage_uri(app: Flask) -> str:
    if app.config["RATELIMIT_STORAGE_URI"]:
        return app.config["RATELIMIT_STORAGE_URI"]
    if isinstance(app.extensions["cache"][cache], SafeRedisCache):
        return app.config["CACHE_REDIS_URL"]
    return "memory://"


def _storage_options(config: dict, storage_uri: str) -> dict[str, Any]:
    if not storage_uri.startswith(("redis", "valkey")):
        return {}
    timeout = config["CACHE_SOCKET_TIMEOUT"]
    return {
        # Beside the cache's keys, under the same prefix.
        "key_prefix": f"{config['CACHE_KEY_PREFIX']}limits",
        # A dead or stalled Redis costs a request this long at most, once: then the
        # in-memory fallback takes over. redis-py's retries would multiply it.
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "wrap_exceptions": True,
    }


def _too_many_requests(limiter: Limiter, error: RateLimitExceeded) -> Response:
    limit = error.limit.limit
    breached = limiter.current_limit
    try:
        reset_at = breached.window.reset_time if breached else time.time() + limit.get_expiry()
    except StorageError:
        # Redis went away after counting this request: the longest wait is the safe answer.
        reset_at = time.time() + limit.get_expiry()
    wait = max(1, math.ceil(reset_at - time.time()))
    response = json_error(
        f"Too many requests: the limit is {limit}. Try again in {wait} seconds.", 429
    )
    response.headers["Retry-After"] = str(wait)
    response.headers["X-RateLimit-Limit"] = str(limit.amount)
    response.headers["X-RateLimit-Remaining"] = "0"
    response.headers["X-RateLimit-Reset"] = str(math.ceil(reset_at))
    return response
