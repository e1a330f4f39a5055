"""Caching that stays correct with many workers and hosts (README: "Caching").

    @cached_response("items")                  caches a handler's JSON answer (X-Cache: HIT|MISS)
    invalidate("items")                        after a commit: the next read on any worker is fresh
    @cache.memoize() on f(generation("items"))  a function's result, invalidated the same way

Values are JSON in every backend, never pickle; `SafeRedisCache` turns Redis errors
into misses.
"""

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from cachelib.serializers import BaseSerializer
from flask import Flask, Response, current_app, g, request
from flask_caching.backends import FileSystemCache, NullCache, SimpleCache
from flask_caching.backends.rediscache import RedisCache
from marshmallow import Schema
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from backend.api import operations
from backend.config_loading import ConfigError
from backend.extensions import cache

logger = logging.getLogger(__name__)

# Backends that keep one cache per process: a second worker would not see invalidations.
PER_PROCESS_CACHES = (SimpleCache, FileSystemCache)
# A namespace's generation until its first invalidation.
FIRST_GENERATION = "0"


def init_cache(app: Flask) -> None:
    config = app.config
    if config["CACHE_TYPE"] == "RedisCache":
        if not config.get("CACHE_REDIS_URL"):
            raise ConfigError("Config error: CACHE_TYPE RedisCache needs CACHE_REDIS_URL.")
        config["CACHE_TYPE"] = "backend.caching.SafeRedisCache"
    if config["CACHE_TYPE"] != "NullCache":
        # JSON everywhere, so that what works in development works with Redis.
        config.setdefault("CACHE_SERIALIZER", JsonSerializer)
    cache.init_app(app)

    backend = app.extensions["cache"][cache]
    if config["ENVIRONMENT"] == "production" and isinstance(backend, PER_PROCESS_CACHES):
        raise ConfigError(
            f"Config error: CACHE_TYPE {type(backend).__name__} keeps a cache per process, "
            "so workers would serve stale answers; production refuses it. "
            "Set FLASK_CACHE_TYPE=RedisCache and FLASK_CACHE_REDIS_URL, or NullCache."
        )
    if not isinstance(backend, NullCache) and not isinstance(backend.serializer, JsonSerializer):
        raise ConfigError(
            f"Config error: CACHE_TYPE {type(backend).__name__} would pickle values, "
            "which Redis could turn into code; use RedisCache or NullCache."
        )


def invalidate(namespace: str) -> None:
    """Call after committing a write that changes what the namespace's endpoints answer."""
    # A fresh random token, never expiring: a counter could come back to a value whose
    # entries still exist, after an expiry, an eviction or a Redis restart.
    key, token = _generation_key(namespace), uuid.uuid4().hex
    backend = cache.cache
    if isinstance(backend, SafeRedisCache):
        backend.set_even_while_skipping(key, token)
    else:
        backend.set(key, token, timeout=0)


def generation(namespace: str) -> str:
    """The namespace's current generation: pass it to a memoized function to key on it."""
    return cache.get(_generation_key(namespace)) or FIRST_GENERATION


def cached_response(namespace: str, per_client: bool = False) -> Callable:
    """Caches a handler's answer, as its 200 response schema dumps it, until the namespace
    is invalidated.

    Goes under `registry.handles`, so authentication and validation happen first.
    `per_client=True` keys on the calling client too, for answers that differ by client.
    """

    def decorator(handler: Callable) -> Callable:
        schema: Schema | None = None

        @wraps(handler)
        def cached_handler(*args: Any, **kwargs: Any) -> Response:
            nonlocal schema
            if schema is None:
                schema = _success_schema_of(cached_handler)
            key = _answer_key(namespace, per_client)
            current, answer = cache.get_many(_generation_key(namespace), key)
            current = current or FIRST_GENERATION
            if _is_answer_of(answer, current):
                body, status = answer["body"], "HIT"
            else:
                body, status = json.dumps(schema.dump(handler(*args, **kwargs))), "MISS"
                cache.set(key, {"generation": current, "body": body})
            response = current_app.response_class(body, mimetype="application/json")
            response.headers["X-Cache"] = status
            g.cached_answer = response.get_data()
            return response

        return cached_handler

    return decorator


def _is_answer_of(answer: Any, generation: str) -> bool:
    # Anything else in its place (written by something else) is a miss, and replaced.
    return (
        isinstance(answer, dict)
        and answer.get("generation") == generation
        and isinstance(answer.get("body"), str)
    )


def _success_schema_of(handler: Callable) -> Schema:
    """The schema rebar was given for the handler's 200, set up to trust this cache."""
    for _, _, definition in operations():
        if definition.func is handler:
            schema = definition.response_body_schema[200]
            _skip_reloading_own_answers(schema)
            return schema
    raise LookupError(f"{handler.__name__}: put @cached_response under @registry.handles.")


def _skip_reloading_own_answers(schema: Schema) -> None:
    """rebar validates a Response a handler returns by loading its body with the response
    schema (flask_rebar.rebar._wrap_handler): 0.7 ms of CPU for a page of 50 items, on
    every cache hit. A body this schema dumped needs no such check."""
    load = schema.loads

    def loads(data: str | bytes | bytearray, /, **kwargs: Any) -> Any:
        if g.pop("cached_answer", None) == data:
            return None
        return load(data, **kwargs)

    # Replacing one instance's method on purpose, which mypy reports for every method.
    schema.loads = loads  # type: ignore[method-assign]


def _generation_key(namespace: str) -> str:
    return f"{namespace}:generation"


def _answer_key(namespace: str, per_client: bool) -> str:
    client = str(g.caller) if per_client else ""
    # Hashed: the query string is the client's, of any length and content.
    request_id = hashlib.sha256(f"{client} {request.full_path}".encode()).hexdigest()
    return f"{namespace}:answer:{request_id}"


class JsonSerializer(BaseSerializer):
    """Stores JSON text: what comes back from Redis is data, never code."""

    def dumps(self, value: Any, protocol: int | None = None) -> bytes:
        return json.dumps(value).encode()

    def loads(self, bvalue: bytes | None) -> Any:
        # None is a missing key. Integers from INCR are plain digits, which is JSON too.
        return None if bvalue is None else json.loads(bvalue)


# KEYS[1]: the key; ARGV: the value that must not be replaced, the new value, seconds.
SET_UNLESS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class SafeRedisCache(RedisCache):
    """Flask-Caching's RedisCache with JSON values and a cache that may fail.

    Any Redis error makes a read a miss and a write a no-op, logged once; Redis is
    then left alone for `CACHE_RETRY_AFTER` seconds, so requests do not each wait
    for the timeout while it is down.
    """

    def __init__(self, *args: Any, retry_after: float = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after
        self.skip_until = 0.0

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> RedisCache:
        timeout = config["CACHE_SOCKET_TIMEOUT"]
        config["CACHE_OPTIONS"] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # The pause below replaces redis-py's retries, which multiply the timeout.
            "retry": Retry(NoBackoff(), 0),
            **(config.get("CACHE_OPTIONS") or {}),
        }
        kwargs["retry_after"] = config["CACHE_RETRY_AFTER"]
        return super().factory(app, config, args, kwargs)

    def _call(self, operation: Callable, fallback: Any, *args: Any, skip: bool = True) -> Any:
        if skip and time.monotonic() < self.skip_until:
            return fallback
        try:
            result = operation(*args)
        except RedisError as error:
            self.skip_until = time.monotonic() + self.retry_after
            logger.warning(
                "Cache unavailable, answering from the database for %ss: %s",
                self.retry_after,
                error,
            )
            return fallback
        except (ValueError, RecursionError):
            # Not JSON, or nested too deep to read: written by something else. A miss,
            # not an error for the client.
            return fallback
        return result

    def get(self, key: str) -> Any:
        return self._call(super().get, None, key)

    def get_many(self, *keys: str) -> list[Any]:
        return self._call(super().get_many, [None] * len(keys), *keys)

    def set(self, key: str, value: Any, timeout: int | timedelta | None = None) -> Any:
        return self._call(super().set, False, key, value, timeout)

    def set_even_while_skipping(self, key: str, value: Any, timeout: int = 0) -> Any:
        """For invalidations and revocations: one lost here leaves every other worker
        serving stale answers, or accepting a revoked token."""
        return self._call(super().set, False, key, value, timeout, skip=False)

    def set_unless(self, key: str, value: Any, unless: Any, timeout: int) -> bool:
        """Sets the key unless it holds `unless`, in one step in Redis; tried even while
        skipping. For session states: a role change must not undo a revocation."""
        script = self._write_client.register_script(SET_UNLESS)
        dumps = self.serializer.dumps
        return self._call(
            lambda: script(
                keys=[self._get_prefix() + key], args=[dumps(unless), dumps(value), timeout]
            ),
            False,
            skip=False,
        )

    def set_many(
        self, mapping: dict[str, Any], timeout: int | timedelta | None = None
    ) -> list[Any]:
        return self._call(super().set_many, [], mapping, timeout)

    def add(self, key: str, value: Any, timeout: int | timedelta | None = None) -> bool:
        return self._call(super().add, False, key, value, timeout)

    def delete(self, key: str) -> bool:
        return self._call(super().delete, False, key)

    def delete_many(self, *keys: str) -> list[Any]:
        return self._call(super().delete_many, [], *keys)

    def has(self, key: str) -> bool:
        return self._call(super().has, False, key)
