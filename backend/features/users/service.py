"""What both the /users endpoints and the accounts feature need of users."""

from typing import Any

from flask_rebar import errors
from sqlalchemy import select

from backend.extensions import db
from backend.features.accounts.access import publish_role
from backend.features.accounts.models import LoginSession
from backend.features.accounts.sessions import end_sessions, live_session_ids
from backend.features.audit.events import record_event
from backend.features.users.models import User


def ensure_email_free(email: str) -> None:
    # The unique constraint still guards against a race; this gives the clear message.
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise errors.Conflict(
            "A user with this email already exists.",
            {"errors": {"email": "Already registered."}},
        )


def create_account(fields: dict[str, Any], action: str, details: str | None = None) -> User:
    """Adds and commits a user from validated fields, with the audit event `action`."""
    ensure_email_free(fields["email"])
    user = User(**{name: value for name, value in fields.items() if name != "password"})
    user.set_password(fields["password"])
    db.session.add(user)
    db.session.flush()
    record_event(action, user_id=user.id, details=details)
    db.session.commit()
    return user


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def update_account(user: User, changes: dict[str, Any]) -> None:
    """Applies an admin's changes and commits: each change of role, blocked status or
    password goes to the audit trail; blocking or a new password ends the user's
    sessions, and a new role reaches every worker at the next request."""
    events = _security_events(user, changes)
    if "password" in changes:
        user.set_password(changes.pop("password"))
    for field, value in changes.items():
        setattr(user, field, value)
    for action, details in events.items():
        record_event(action, user_id=user.id, details=details)
    # Unblocking too: a login that raced the block may have left a session behind.
    if {"user_blocked", "user_unblocked", "password_changed"} & events.keys():
        end_sessions(LoginSession.user_id == user.id)
    db.session.commit()
    if "role_changed" in events:
        publish_role(user.id, user.role, live_session_ids(user.id))


def _security_events(user: User, changes: dict[str, Any]) -> dict[str, str | None]:
    events: dict[str, str | None] = {}
    if changes.get("role", user.role) != user.role:
        events["role_changed"] = f"{user.role} -> {changes['role']}"
    if changes.get("blocked", user.blocked) != user.blocked:
        events["user_blocked" if changes["blocked"] else "user_unblocked"] = None
    if "password" in changes:
        events["password_changed"] = None
    return events
