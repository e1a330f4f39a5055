"""The /auth endpoints (register, sign in, tokens, password reset) and /me, the caller's own account."""

from flask import current_app, request
from flask_rebar import errors, get_validated_args, get_validated_body
from sqlalchemy import select

from backend.api import registry
from backend.auth import current_caller, requires_user
from backend.database import utcnow
from backend.errors import with_errors
from backend.extensions import db
from backend.features.accounts.models import LoginSession
from backend.features.accounts.password_reset import confirm_reset, request_reset
from backend.features.accounts.schemas import (
    AcceptedSchema,
    LoginSchema,
    PasswordResetConfirmSchema,
    PasswordResetSchema,
    RefreshSchema,
    RegisterSchema,
    SessionPageSchema,
    TokenPairSchema,
    UpdateMeSchema,
    session_view,
)
from backend.features.accounts.service import log_in, update_own_account
from backend.features.accounts.sessions import end_sessions, refresh_session
from backend.features.audit.events import record_event
from backend.features.users.models import User
from backend.features.users.schemas import UserSchema
from backend.features.users.service import create_account
from backend.pagination import PageQuerySchema, paginate
from backend.rate_limits import rate_limit

RESET_ACCEPTED = (
    "If an account has this email, a message with a link to reset its password is on its way."
)


@registry.handles(
    rule="/auth/register",
    method="POST",
    request_body_schema=RegisterSchema(),
    response_body_schema=with_errors({201: UserSchema()}, 409, 413),
    authenticators=None,
    tags=["auth"],
)
@rate_limit("register")
def register() -> tuple[User, int, dict]:
    """Create an account with the role user (when REGISTRATION_OPEN)."""
    if not current_app.config["REGISTRATION_OPEN"]:
        raise errors.Forbidden("Registration is closed: ask an administrator for an account.")
    user = create_account(get_validated_body(), "registered")
    location = request.path.removesuffix("/auth/register") + f"/users/{user.id}"
    return user, 201, {"Location": location}


@registry.handles(
    rule="/auth/login",
    method="POST",
    request_body_schema=LoginSchema(),
    response_body_schema=with_errors({200: TokenPairSchema()}, 413, 429),
    authenticators=None,
    tags=["auth"],
)
@rate_limit("login")
def login() -> dict:
    """Sign in: an access token for requests and a refresh token for new ones."""
    body = get_validated_body()
    return log_in(body["email"], body["password"], body.get("device"))


@registry.handles(
    rule="/auth/refresh",
    method="POST",
    request_body_schema=RefreshSchema(),
    response_body_schema=with_errors({200: TokenPairSchema()}, 413),
    authenticators=None,
    tags=["auth"],
)
def refresh() -> dict:
    """Trade a refresh token, once, for a new pair."""
    return refresh_session(get_validated_body()["refresh_token"])


@registry.handles(
    rule="/auth/logout",
    method="POST",
    response_body_schema=with_errors({204: None}),
    authenticators=requires_user("me:write"),
    tags=["auth"],
)
def logout() -> tuple[None, int]:
    """End this session: its access and refresh tokens stop working at once."""
    caller = current_caller()
    record_event("logout", user_id=caller.user_id, details=f"session={caller.session_id}")
    end_sessions(LoginSession.id == caller.session_id)
    return None, 204


@registry.handles(
    rule="/auth/password-reset",
    method="POST",
    request_body_schema=PasswordResetSchema(),
    response_body_schema=with_errors({202: AcceptedSchema()}, 413, 429),
    authenticators=None,
    tags=["auth"],
)
@rate_limit("password_reset")
def request_password_reset() -> tuple[dict, int]:
    """Mail a reset link, if an account has this email; the answer does not say."""
    request_reset(get_validated_body()["email"])
    return {"message": RESET_ACCEPTED}, 202


@registry.handles(
    rule="/auth/password-reset/confirm",
    method="POST",
    request_body_schema=PasswordResetConfirmSchema(),
    response_body_schema=with_errors({204: None}, 413),
    authenticators=None,
    tags=["auth"],
)
@rate_limit("password_reset")
def confirm_password_reset() -> tuple[None, int]:
    """Set a new password with the token from the mail; every session of the account ends."""
    body = get_validated_body()
    confirm_reset(body["token"], body["password"])
    return None, 204


def _me() -> User:
    user_id = current_caller().user_id
    return db.get_or_404(User, user_id, description=f"User {user_id} not found.")


@registry.handles(
    rule="/me",
    method="GET",
    response_body_schema=with_errors({200: UserSchema()}, 404),
    authenticators=requires_user("me:read"),
    tags=["me"],
)
def get_me() -> User:
    """The signed-in user, with their role."""
    return _me()


@registry.handles(
    rule="/me",
    method="PATCH",
    request_body_schema=UpdateMeSchema(),
    response_body_schema=with_errors({200: UserSchema()}, 404, 409, 413, 429),
    authenticators=requires_user("me:write"),
    tags=["me"],
)
def update_me() -> User:
    """Change name, email or password; a new password ends every other session."""
    user = _me()
    update_own_account(user, get_validated_body(), current_caller().session_id)
    return user


@registry.handles(
    rule="/me/sessions",
    method="GET",
    query_string_schema=PageQuerySchema(),
    response_body_schema=with_errors({200: SessionPageSchema()}),
    authenticators=requires_user("me:read"),
    tags=["me"],
)
def list_my_sessions() -> dict:
    """The devices signed in to this account, most recently used first."""
    caller = current_caller()
    statement = (
        select(LoginSession)
        .where(
            LoginSession.user_id == caller.user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > utcnow(),
        )
        .order_by(LoginSession.last_used_at.desc(), LoginSession.id.desc())
    )
    page = paginate(statement, **get_validated_args())
    page["items"] = [session_view(session, caller.session_id) for session in page["items"]]
    return page


@registry.handles(
    rule="/me/sessions/<id:session_id>",
    method="DELETE",
    response_body_schema=with_errors({204: None}, 404),
    authenticators=requires_user("me:write"),
    tags=["me"],
)
def end_my_session(session_id: int) -> tuple[None, int]:
    """Sign one device out."""
    user_id = current_caller().user_id
    mine = (LoginSession.id == session_id, LoginSession.user_id == user_id)
    if db.session.scalar(select(LoginSession.id).where(*mine)) is None:
        raise errors.NotFound(f"Session {session_id} not found.")
    record_event("session_revoked", user_id=user_id, details=f"session={session_id}")
    end_sessions(*mine)
    return None, 204


@registry.handles(
    rule="/me/sessions",
    method="DELETE",
    response_body_schema=with_errors({204: None}),
    authenticators=requires_user("me:write"),
    tags=["me"],
)
def end_my_other_sessions() -> tuple[None, int]:
    """Sign every other device out; this one stays signed in."""
    caller = current_caller()
    record_event("sessions_revoked", user_id=caller.user_id, details="all but the current")
    end_sessions(LoginSession.user_id == caller.user_id, LoginSession.id != caller.session_id)
    return None, 204
