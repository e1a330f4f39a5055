"""The audit trail's maintenance job, named in JOBS (backend/settings.py)."""

import logging
from datetime import timedelta

from sqlalchemy import delete

from backend.database import delete_and_count, utcnow
from backend.features.audit.models import AuditEvent

logger = logging.getLogger(__name__)


def prune_audit_events(days: int = 90) -> None:
    """Delete events older than `days`: the trail gains rows with every login, forever."""
    cutoff = utcnow() - timedelta(days=days)
    deleted = delete_and_count(delete(AuditEvent).where(AuditEvent.created_at < cutoff))
    logger.info("Pruned %d audit event(s) older than %s.", deleted, cutoff.isoformat())
