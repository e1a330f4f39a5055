"""Whether an access token still opens the API: checked on every request with a bearer token.

The token's signature and expiry are checked in the process. Whether its session is
still alive (not logged out, revoked or blocked) and the user's current role come
from the shared cache (Redis) when it has them, else from the database, whose answer
the cache then keeps for `SESSION_CACHE_SECONDS`:

    session:<id>  {"user": 42, "role": "editor"}   alive
                  {"revoked": true}                 ended; kept as long as an access token lives

Ending a session writes the database first, then the revoked mark over whatever the
cache held, so every worker and host refuses the token from the next request on. A
role change writes the new role the same way, except over a revoked mark.
While Redis is unreachable every check asks the database: nothing revoked gets in,
and valid tokens keep working. A per-process cache (development's SimpleCache) or
NullCache is not shared by workers: then every check asks the database.
"""

from typing import Any

from flask import current_app
from sqlalchemy import select

from backend.extensions import cache, db
from backend.features.accounts import tokens
from backend.features.accounts.models import LoginSession
from backend.features.users.models import User
from backend.redis_cache import SafeRedisCache

REVOKED = {"revoked": True}


def caller_of_access_token(token: str) -> tuple[int, str, int] | None:
    """(user id, role, session id) if the token is valid and its session alive, else None."""
    claims = tokens.read(token, tokens.ACCESS)
    if claims is None or not isinstance(claims.get("sid"), int):
        return None
    user_id, session_id = int(claims["sub"]), claims["sid"]
    state = _cached(session_id)
    if state is None:
        state = _state_in_database(session_id)
        seconds = current_app.config["SESSION_CACHE_SECONDS"]
        redis = _shared_cache()
        if redis is not None and seconds > 0:
            # add, not set: a revocation written meanwhile is not overwritten.
            redis.add(_key(session_id), state, seconds)
    if state.get("user") != user_id or not isinstance(state.get("role"), str):
        return None
    return user_id, state["role"], session_id


def mark_revoked(session_ids: list[int]) -> None:
    """Call after committing the end of these sessions."""
    redis = _shared_cache()
    if redis is None:
        return
    timeout = current_app.config["ACCESS_TOKEN_TTL"]
    for session_id in session_ids:
        # Written even while the cache is backing off after an error: a revocation
        # lost here would let the token in on every worker.
        redis.set_even_while_skipping(_key(session_id), REVOKED, timeout)


def publish_role(user_id: int, role: str, session_ids: list[int]) -> None:
    """Call after committing a role change, with the user's live sessions: the next check
    on every worker sees the new role. A session revoked meanwhile stays revoked."""
    state, timeout = {"user": user_id, "role": role}, current_app.config["SESSION_CACHE_SECONDS"]
    redis = _shared_cache()
    if redis is None or timeout <= 0:
        return
    for session_id in session_ids:
        redis.set_unless(_key(session_id), state, REVOKED, timeout)


def _cached(session_id: int) -> dict[str, Any] | None:
    redis = _shared_cache()
    state = redis.get(_key(session_id)) if redis is not None else None
    return state if isinstance(state, dict) else None


def _state_in_database(session_id: int) -> dict[str, Any]:
    statement = (
        select(LoginSession.user_id, User.role)
        .join(User, User.id == LoginSession.user_id)
        .where(
            LoginSession.id == session_id,
            LoginSession.revoked_at.is_(None),
            User.blocked.is_(False),
        )
    )
    row = db.session.execute(statement).one_or_none()
    return REVOKED if row is None else {"user": row.user_id, "role": row.role}


def _shared_cache() -> SafeRedisCache | None:
    # Redis is the one cache every worker shares (backend/caching.py refuses the others
    # in production); with any other, every check asks the database.
    return cache.cache if isinstance(cache.cache, SafeRedisCache) else None


def _key(session_id: int) -> str:
    return f"session:{session_id}"
