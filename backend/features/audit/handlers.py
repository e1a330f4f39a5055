"""The /audit-events endpoint: the security events of every account, for admins."""

from flask_rebar import get_validated_args
from sqlalchemy import select

from backend.api import registry
from backend.auth import requires_scope
from backend.errors import with_errors
from backend.features.audit.models import AuditEvent
from backend.features.audit.schemas import AuditEventPageSchema, ListAuditEventsQuerySchema
from backend.pagination import paginate


@registry.handles(
    rule="/audit-events",
    method="GET",
    query_string_schema=ListAuditEventsQuerySchema(),
    response_body_schema=with_errors({200: AuditEventPageSchema()}),
    authenticators=requires_scope("audit:read"),
    tags=["audit"],
)
def list_audit_events() -> dict:
    """Search the audit trail by user, action and time, newest first."""
    args = get_validated_args()
    statement = select(AuditEvent).order_by(AuditEvent.id.desc())
    if "user_id" in args:
        statement = statement.where(AuditEvent.user_id == args["user_id"])
    if "action" in args:
        statement = statement.where(AuditEvent.action == args["action"])
    if "since" in args:
        statement = statement.where(AuditEvent.created_at >= args["since"])
    if "until" in args:
        statement = statement.where(AuditEvent.created_at < args["until"])
    return paginate(statement, limit=args["limit"], offset=args["offset"])
