"""What admins see of the audit trail, and how they search it."""

from marshmallow import EXCLUDE, Schema, fields, validate

from backend.fields import Integer, UTCDateTime
from backend.pagination import PageQuerySchema, PageSchema
from backend.url_converters import MAX_ID


class AuditEventSchema(Schema):
    id = fields.Integer(required=True)
    created_at = UTCDateTime(required=True)
    action = fields.String(required=True)
    user_id = fields.Integer(required=True, allow_none=True)
    actor = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)
    ip = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)
    details = fields.String(required=True, allow_none=True)


class AuditEventPageSchema(PageSchema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)


class ListAuditEventsQuerySchema(PageQuerySchema):
    """Filters, each optional; newest events first."""

    class Meta:
        unknown = EXCLUDE

    user_id = Integer(validate=validate.Range(min=1, max=MAX_ID))
    action = fields.String(validate=validate.Length(min=1, max=40))
    since = UTCDateTime(metadata={"description": "Events at or after this time."})
    until = UTCDateTime(metadata={"description": "Events before this time."})
