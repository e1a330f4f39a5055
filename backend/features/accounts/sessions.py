"""Login sessions: started at login, renewed by refresh tokens, ended by revocation."""

from datetime import timedelta
from typing import Any

from flask import current_app, request
from flask_rebar import errors
from sqlalchemy import ColumnElement, select, update

from backend.database import utcnow
from backend.extensions import db
from backend.features.accounts import tokens
from backend.features.accounts.access import mark_revoked
from backend.features.accounts.models import LoginSession
from backend.features.audit.events import record_event
from backend.features.users.models import User

INVALID_REFRESH_TOKEN = "Invalid, expired or revoked refresh token: sign in again."


def start_session(user: User, device: str | None) -> dict[str, Any]:
    """Adds the session; the caller commits, then hands out `token_pair(session)`."""
    session = LoginSession(
        user_id=user.id,
        device=device or request.user_agent.string[:100] or "unknown",
        ip=request.remote_addr,
        expires_at=utcnow() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"]),
    )
    db.session.add(session)
    db.session.flush()
    return token_pair(session)


def token_pair(session: LoginSession) -> dict[str, Any]:
    config = current_app.config
    return {
        "access_token": tokens.issue(
            tokens.ACCESS, session.user_id, config["ACCESS_TOKEN_TTL"], sid=session.id
        ),
        "refresh_token": tokens.issue(
            tokens.REFRESH,
            session.user_id,
            config["REFRESH_TOKEN_TTL"],
            sid=session.id,
            n=session.refresh_count,
        ),
        "token_type": "Bearer",
        "expires_in": config["ACCESS_TOKEN_TTL"],
    }


def refresh_session(refresh_token: str) -> dict[str, Any]:
    """A new pair for a refresh token that was never used. One used before means it
    was copied: the whole session ends, the newest tokens derived from it included."""
    claims = tokens.read(refresh_token, tokens.REFRESH)
    if claims is None or not all(isinstance(claims.get(name), int) for name in ("sid", "n")):
        raise errors.Unauthorized(INVALID_REFRESH_TOKEN)
    session_id, count, now = claims["sid"], claims["n"], utcnow()
    # One statement, so of two requests presenting the same token only one renews.
    renewed = db.session.scalar(
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.user_id == int(claims["sub"]),
            LoginSession.refresh_count == count,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
            # A login that raced the block made a session the block did not end.
            LoginSession.user_id.in_(select(User.id).where(User.blocked.is_(False))),
        )
        .values(
            refresh_count=count + 1,
            last_used_at=now,
            expires_at=now + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"]),
        )
        .returning(LoginSession)
    )
    if renewed is None:
        db.session.rollback()
        _end_if_reused(session_id, count)
        raise errors.Unauthorized(INVALID_REFRESH_TOKEN)
    db.session.commit()
    return token_pair(renewed)


def _end_if_reused(session_id: int, count: int) -> None:
    session = db.session.get(LoginSession, session_id)
    if session is None or session.revoked_at is not None or session.refresh_count <= count:
        return
    record_event("refresh_reused", user_id=session.user_id, details=f"session={session_id}")
    end_sessions(LoginSession.id == session_id)


def end_sessions(*conditions: ColumnElement[bool]) -> list[int]:
    """Ends the live sessions that match, commits (with whatever else the caller added),
    then marks them revoked in the shared cache: refused from the next request on."""
    ended = db.session.scalars(
        update(LoginSession)
        .where(LoginSession.revoked_at.is_(None), *conditions)
        .values(revoked_at=utcnow())
        .returning(LoginSession.id)
    ).all()
    db.session.commit()
    mark_revoked(list(ended))
    return list(ended)


def live_session_ids(user_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(LoginSession.id).where(
                LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
            )
        )
    )
