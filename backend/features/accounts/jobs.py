"""The accounts feature's clean-up job, named in JOBS (backend/settings.py)."""

import logging
from datetime import timedelta

from sqlalchemy import delete, or_

from backend.database import delete_and_count, utcnow
from backend.features.accounts.models import LoginSession

logger = logging.getLogger(__name__)


def prune_sessions(days: int = 0) -> None:
    """Delete sessions that expired or were revoked (more than `days` ago): every login
    adds a row, and nothing else removes it. The audit trail keeps their history."""
    cutoff = utcnow() - timedelta(days=days)
    ended = or_(LoginSession.expires_at < cutoff, LoginSession.revoked_at < cutoff)
    deleted = delete_and_count(delete(LoginSession).where(ended))
    logger.info("Pruned %d session(s) that ended before %s.", deleted, cutoff.isoformat())
