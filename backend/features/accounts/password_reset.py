"""Password reset by mail: a signed link that works once, for a limited time.

The token carries a fingerprint of the password hash it was made for: any change of
password (this reset included) makes it stop working, with no table of used tokens.
"""

import hashlib

from flask import current_app
from flask_rebar import errors, messages
from sqlalchemy import update

from backend.extensions import db
from backend.features.accounts import tokens
from backend.features.accounts.limits import record_attempt
from backend.features.accounts.models import LoginSession
from backend.features.accounts.sessions import end_sessions
from backend.features.audit.events import record_event
from backend.features.users.models import User
from backend.features.users.passwords import hash_password
from backend.features.users.service import find_by_email
from backend.mail import compose, send

USED = "Invalid or expired, or already used."


def request_reset(email: str) -> None:
    """The same work, and the same answer, whether or not the email has an account: an
    unknown email gets a message composed all the same, and not sent. Sending happens
    in the background (backend/mail)."""
    user = find_by_email(email)
    record_attempt("password_reset_requested", email, user.id if user else None)
    account = user or User(id=0, name="", password_hash="")  # never stored
    config = current_app.config
    ttl = config["PASSWORD_RESET_TTL"]
    token = tokens.issue(tokens.PASSWORD_RESET, account.id, ttl, pwd=fingerprint(account))
    message = compose(
        email,
        "Reset your password",
        f"Hello {account.name},\n\n"
        f"To choose a new password, open this link within {ttl // 60} minutes:\n\n"
        f"{config['PASSWORD_RESET_URL'].replace('{token}', token)}\n\n"
        "If you did not ask for this, ignore this message: your password is unchanged.\n",
    )
    if user is not None:
        send(message)


def confirm_reset(token: str, password: str) -> None:
    claims = tokens.read(token, tokens.PASSWORD_RESET)
    user = db.session.get(User, int(claims["sub"])) if claims else None
    if claims is None or user is None or claims.get("pwd") != fingerprint(user):
        raise errors.BadRequest(messages.body_validation_failed, {"errors": {"token": USED}})
    # Only if the hash is still the one the token was made for: of two confirms racing
    # with one token, one changes the password and the other finds it changed.
    changed = db.session.scalar(
        update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=hash_password(password))
        .returning(User.id)
    )
    if changed is None:
        db.session.rollback()
        raise errors.BadRequest(messages.body_validation_failed, {"errors": {"token": USED}})
    record_event("password_reset", user_id=user.id)
    end_sessions(LoginSession.user_id == user.id)


def fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
