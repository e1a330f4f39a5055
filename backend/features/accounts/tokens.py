"""Signed tokens (JWT, HS256 with JWT_SECRET_KEY): access, refresh and password reset.

A token says what it is for in `purpose`, so one kind is never accepted as another.
"""

import time
from typing import Any

import jwt
from flask import current_app

ACCESS = "access"
REFRESH = "refresh"
PASSWORD_RESET = "password-reset"
ALGORITHM = "HS256"


def issue(purpose: str, user_id: int, ttl: int, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": str(user_id), "purpose": purpose, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(payload, current_app.config["JWT_SECRET_KEY"], algorithm=ALGORITHM)


def read(token: str, purpose: str) -> dict[str, Any] | None:
    """The token's claims, or None if it is forged, expired, malformed or for another purpose."""
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET_KEY"],
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "purpose"]},
        )
    except jwt.PyJWTError:
        return None
    if claims["purpose"] != purpose or not str(claims["sub"]).isdecimal():
        return None
    return claims
