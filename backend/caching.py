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
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_caching.backends import FileSystemCache, NullCache, SimpleCache
from marshmallow import Schema

from backend.api import operations
from backend.config_loading import ConfigError
from backend.extensions import cache
from backend.redis_cache import JsonSerializer, SafeRedisCache

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
        config["CACHE_TYPE"] = "backend.caching.SafeRedisCache"  # from backend/redis_cache.py
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
