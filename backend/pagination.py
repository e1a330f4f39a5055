"""Limit/offset pagination shared by every list endpoint."""

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import Select, func, select

from backend.extensions import db
from backend.fields import Integer

MAX_LIMIT = 100
MAX_OFFSET = 2**31 - 1


class PageQuerySchema(Schema):
    class Meta:
        # Unknown query parameters are ignored; the request log still shows them.
        unknown = EXCLUDE

    limit = Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIMIT))
    offset = Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class PageSchema(Schema):
    """The envelope of every list; a subclass adds `items` with its own schema."""

    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


def paginate(statement: Select, limit: int, offset: int) -> dict[str, Any]:
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    items = db.session.scalars(statement.limit(limit).offset(offset)).all()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
