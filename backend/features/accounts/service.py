"""Signing in, and changing one's own account: what the /auth and /me handlers call."""

from typing import Any

from flask_rebar import errors, messages

from backend.extensions import db
from backend.features.accounts.limits import record_attempt
from backend.features.accounts.models import LoginSession
from backend.features.accounts.sessions import end_sessions, start_session
from backend.features.audit.events import record_event
from backend.features.users.models import User
from backend.features.users.passwords import needs_rehash, verify_dummy
from backend.features.users.service import ensure_email_free, find_by_email

WRONG_CREDENTIALS = "Wrong email or password."


def log_in(email: str, password: str, device: str | None) -> dict[str, Any]:
    """A new session's token pair. Unknown email and wrong password: the same 401 after
    the same work; blocked: 403, once the password was right."""
    user = find_by_email(email)
    attempt = record_attempt("login_failed", email, user.id if user else None)
    if user is None:
        verify_dummy(password)
        raise errors.Unauthorized(WRONG_CREDENTIALS)
    if not user.check_password(password):
        raise errors.Unauthorized(WRONG_CREDENTIALS)
    if user.blocked:
        attempt.action = "login_blocked"
        db.session.commit()
        raise errors.Forbidden("This account is blocked.")
    if needs_rehash(user.password_hash):
        user.set_password(password)
    attempt.action = "login_succeeded"
    pair = start_session(user, device)
    db.session.commit()
    return pair


def update_own_account(user: User, changes: dict[str, Any], session_id: int | None) -> None:
    """Name, email or password; the last two need the current password, and a new
    password ends every session but this one. Commits."""
    current_password = changes.pop("current_password", None)
    changes_email = changes.get("email", user.email) != user.email
    if changes_email or "password" in changes:
        _check_current_password(user, current_password)
    if changes_email:
        ensure_email_free(changes["email"])
        record_event("email_changed", user_id=user.id, email=changes["email"])
    user.name = changes.get("name", user.name)
    user.email = changes.get("email", user.email)
    if "password" in changes:
        user.set_password(changes["password"])
        record_event("password_changed", user_id=user.id)
        end_sessions(LoginSession.user_id == user.id, LoginSession.id != session_id)
    db.session.commit()


def _check_current_password(user: User, current_password: str | None) -> None:
    if current_password is None:
        problem = "Required to change the email or the password."
    else:
        # Counted like a failed login: a stolen token must not become a way to guess.
        attempt = record_attempt("login_failed", user.email, user.id)
        if user.check_password(current_password):
            attempt.action = "password_confirmed"
            return
        problem = "Wrong password."
    raise errors.BadRequest(
        messages.body_validation_failed, {"errors": {"current_password": problem}}
    )
