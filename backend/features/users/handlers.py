"""The /users endpoints."""

from flask import request
from flask_rebar import errors, get_validated_args, get_validated_body
from sqlalchemy import select

from backend.api import registry
from backend.auth import current_caller, requires_scope, role_at_least
from backend.database import delete_or_404
from backend.errors import with_errors
from backend.extensions import db
from backend.features.accounts.access import mark_revoked
from backend.features.accounts.sessions import live_session_ids
from backend.features.users.models import User
from backend.features.users.schemas import (
    CreateUserSchema,
    UpdateUserSchema,
    UserPageSchema,
    UserSchema,
)
from backend.features.users.service import create_account, ensure_email_free, update_account
from backend.features.users.signals import user_deleted
from backend.pagination import PageQuerySchema, paginate


def _ensure_not_own(changes: dict) -> None:
    if {"role", "blocked"} & changes.keys():
        raise errors.Forbidden("Nobody can change their own role or block themselves.")
    if {"email", "password"} & changes.keys():
        raise errors.Forbidden(
            "Change your own email or password with PATCH /api/v1/me, "
            "which asks for your current password."
        )


def _ensure_may_grant(role: str | None) -> None:
    # A role with users:write below admin (a custom one) must not make admins.
    if role is not None and current_caller().user_id is not None and not role_at_least(role):
        raise errors.Forbidden(f"Only a user of the role {role} or higher can give it.")


@registry.handles(
    rule="/users",
    method="GET",
    query_string_schema=PageQuerySchema(),
    response_body_schema=with_errors({200: UserPageSchema()}),
    authenticators=requires_scope("users:read"),
    tags=["users"],
)
def list_users() -> dict:
    """List users, oldest first."""
    return paginate(select(User).order_by(User.id), **get_validated_args())


@registry.handles(
    rule="/users",
    method="POST",
    request_body_schema=CreateUserSchema(),
    response_body_schema=with_errors({201: UserSchema()}, 413, 409),
    authenticators=requires_scope("users:write"),
    tags=["users"],
)
def create_user() -> tuple[User, int, dict]:
    """Create a user."""
    body = get_validated_body()
    _ensure_may_grant(body.get("role"))
    user = create_account(body, "user_created", f"role={body.get('role', 'user')}")
    return user, 201, {"Location": f"{request.path}/{user.id}"}


@registry.handles(
    rule="/users/<id:user_id>",
    method="GET",
    response_body_schema=with_errors({200: UserSchema()}, 404),
    authenticators=requires_scope("users:read"),
    tags=["users"],
)
def get_user(user_id: int) -> User:
    """Get one user."""
    return db.get_or_404(User, user_id, description=f"User {user_id} not found.")


@registry.handles(
    rule="/users/<id:user_id>",
    method="PATCH",
    request_body_schema=UpdateUserSchema(),
    response_body_schema=with_errors({200: UserSchema()}, 404, 413, 409),
    authenticators=requires_scope("users:write"),
    tags=["users"],
)
def update_user(user_id: int) -> User:
    """Change some of a user's fields; blocking them or a new password ends their sessions."""
    user = db.get_or_404(User, user_id, description=f"User {user_id} not found.")
    body = get_validated_body()
    if user_id == current_caller().user_id:
        _ensure_not_own(body)
    _ensure_may_grant(body.get("role"))
    if body.get("email", user.email) != user.email:
        ensure_email_free(body["email"])
    update_account(user, body)
    return user


@registry.handles(
    rule="/users/<id:user_id>",
    method="DELETE",
    response_body_schema=with_errors({204: None}, 404),
    authenticators=requires_scope("users:write"),
    tags=["users"],
)
def delete_user(user_id: int) -> tuple[None, int]:
    """Delete a user and everything they own."""
    # Their sessions go with them (ON DELETE CASCADE); the shared cache must hear of it.
    sessions = live_session_ids(user_id)
    delete_or_404(User, user_id, f"User {user_id} not found.")
    mark_revoked(sessions)
    user_deleted.send(user_id)  # for features that keep data about users
    return None, 204
