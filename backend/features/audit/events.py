"""`record_event(...)`: how every feature writes to the audit trail.

The event joins the caller's transaction: it is stored with the change it describes,
by the same commit, or not at all.
"""

from flask import g, has_request_context, request

from backend.extensions import db
from backend.features.audit.models import AuditEvent


def record_event(
    action: str,
    user_id: int | None = None,
    email: str | None = None,
    details: str | None = None,
) -> AuditEvent:
    event = AuditEvent(action=action, user_id=user_id, email=email, details=details)
    if has_request_context():
        caller = g.get("caller")
        event.actor = str(caller)[:64] if caller is not None else None
        event.ip = request.remote_addr
        event.user_agent = request.user_agent.string[:255] or None
    db.session.add(event)
    return event
