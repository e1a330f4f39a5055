"""What clients send and receive to register, sign in and manage their own account."""

from typing import Any

from marshmallow import Schema, fields, validate

from backend.features.accounts.models import LoginSession
from backend.features.users.schemas import NewUserSchema
from backend.fields import Email, UTCDateTime
from backend.pagination import PageSchema

PASSWORD_LENGTH = validate.Length(min=8, max=128)


class RegisterSchema(NewUserSchema):
    """A new account: email, name and password."""


class LoginSchema(Schema):
    email = Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    device = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "A name for this device in GET /me/sessions; "
            "the User-Agent when left out."
        },
    )


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"description": "Always Bearer."})
    expires_in = fields.Integer(
        required=True, metadata={"description": "Seconds the access token is valid for."}
    )


class PasswordResetSchema(Schema):
    email = Email(required=True, validate=validate.Length(max=254))


class PasswordResetConfirmSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    password = fields.String(required=True, load_only=True, validate=PASSWORD_LENGTH)


class AcceptedSchema(Schema):
    message = fields.String(required=True)


class UpdateMeSchema(Schema):
    """Name, email or password; email and password need the current password too."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    email = Email(validate=validate.Length(max=254))
    password = fields.String(load_only=True, validate=PASSWORD_LENGTH)
    current_password = fields.String(load_only=True, validate=validate.Length(min=1, max=128))


class SessionSchema(Schema):
    """A device signed in to the caller's account."""

    id = fields.Integer(required=True)
    device = fields.String(required=True)
    created_at = UTCDateTime(required=True)
    last_used_at = UTCDateTime(
        required=True, metadata={"description": "The last login or token refresh."}
    )
    current = fields.Boolean(
        required=True, metadata={"description": "Whether it is the session of this request."}
    )


class SessionPageSchema(PageSchema):
    items = fields.List(fields.Nested(SessionSchema), required=True)


def session_view(session: LoginSession, current_id: int | None) -> dict[str, Any]:
    return {
        "id": session.id,
        "device": session.device,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "current": session.id == current_id,
    }
