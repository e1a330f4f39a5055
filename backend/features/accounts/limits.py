"""Sign-in attempts and reset requests, limited per email and per client IP.

Counted in the audit trail, which every worker and host shares and which keeps
counting while Redis is down. An attempt is recorded (and committed) before the
password is checked, so guesses sent at once see each other: no more than the limit
are ever checked in one window. The caller turns a login that succeeded into
another action, so it no longer counts.
"""

import math
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from werkzeug.exceptions import TooManyRequests

from backend.database import utcnow
from backend.extensions import db
from backend.features.audit.events import record_event
from backend.features.audit.models import AuditEvent

THROTTLED = "throttled"


def record_attempt(action: str, email: str, user_id: int | None) -> AuditEvent:
    """Records the attempt, then answers 429 with Retry-After if it is one too many."""
    event = record_event(action, user_id=user_id, email=email)
    db.session.commit()
    wait = _seconds_to_wait(event)
    if wait:
        event.action, event.details = THROTTLED, action
        db.session.commit()
        raise TooManyRequests(f"Too many attempts; try again in {wait} seconds.", retry_after=wait)
    return event


def _seconds_to_wait(event: AuditEvent) -> int:
    config = current_app.config
    window = timedelta(seconds=config["LOGIN_ATTEMPTS_WINDOW"])
    since = utcnow() - window
    limits = [(AuditEvent.email, event.email, config["LOGIN_ATTEMPTS_PER_EMAIL"])]
    if event.ip:
        limits.append((AuditEvent.ip, event.ip, config["LOGIN_ATTEMPTS_PER_IP"]))
    wait = 0.0
    for column, value, limit in limits:
        count, oldest = db.session.execute(
            select(func.count(), func.min(AuditEvent.created_at)).where(
                AuditEvent.action == event.action,
                column == value,
                AuditEvent.created_at > since,
            )
        ).one()
        if count > limit:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=since.tzinfo)
            wait = max(wait, (oldest + window - utcnow()).total_seconds(), 1)
    return math.ceil(wait)
