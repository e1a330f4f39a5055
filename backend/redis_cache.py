"""The cache's Redis backend: JSON values only, and Redis errors turned into misses.

Its own module, importing nothing of the app, so that both backend/caching.py and the
session checks of backend/features/accounts/access.py can use it.
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cachelib.serializers import BaseSerializer
from flask import Flask
from flask_caching.backends.rediscache import RedisCache
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

logger = logging.getLogger(__name__)


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
