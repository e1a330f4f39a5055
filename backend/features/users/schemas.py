"""What clients send and receive for users. The password is accepted, never returned."""

from typing import Any

from marshmallow import Schema, fields, validate

from backend.fields import Email, JSONBoolean, SettingChoice, UTCDateTime
from backend.pagination import PageSchema


class UserSchema(Schema):
    """A user, as every response shows it: never the password."""

    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    blocked = fields.Boolean(required=True)
    created_at = UTCDateTime(required=True)
    updated_at = UTCDateTime(required=True)


class UserPageSchema(PageSchema):
    """One page of users."""

    items = fields.List(fields.Nested(UserSchema), required=True)


class NewUserSchema(Schema):
    """A new user; the email is stored lowercased."""

    email = Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=8, max=128)
    )


class CreateUserSchema(NewUserSchema):
    """A new user as an admin creates it: the role and blocked status may be set too."""

    role = SettingChoice(
        "ROLES",
        metadata={"description": "One of ROLES in the settings; user when left out."},
    )
    blocked = JSONBoolean(metadata={"description": "A blocked user cannot sign in."})


class UpdateUserSchema(CreateUserSchema):
    """The same fields as creation, each optional."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)
