"""What clients send and receive for items."""

from typing import Any

from marshmallow import Schema, fields, validate

from backend.fields import UTCDateTime
from backend.pagination import PageSchema
from backend.url_converters import MAX_ID


class ItemSchema(Schema):
    """An item and the id of the user who owns it."""

    id = fields.Integer(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    owner_id = fields.Integer(required=True)
    created_at = UTCDateTime(required=True)
    updated_at = UTCDateTime(required=True)


class ItemPageSchema(PageSchema):
    """One page of items."""

    items = fields.List(fields.Nested(ItemSchema), required=True)


class ItemStatsSchema(Schema):
    """How many items there are, and how many users own at least one."""

    items = fields.Integer(required=True)
    owners = fields.Integer(required=True)


class CreateItemSchema(Schema):
    """A new item for an existing user."""

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    owner_id = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={
            "description": "The id of an existing user; any other id is a 400. A signed-in "
            "user's own id when left out; API clients must give it."
        },
    )


class UpdateItemSchema(CreateItemSchema):
    """The same fields as creation, each optional."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)
