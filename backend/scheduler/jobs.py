"""The scheduler's own maintenance job, named in JOBS (backend/settings.py)."""

import logging
from datetime import timedelta

from sqlalchemy import delete

from backend.database import utcnow
from backend.extensions import db
from backend.scheduler.models import JobRun

logger = logging.getLogger(__name__)


def prune_job_runs(days: int = 30) -> None:
    """Delete finished runs older than `days`: job_runs gains a row per run, forever."""
    cutoff = utcnow() - timedelta(days=days)
    # On the session's connection (its transaction): Connection.execute returns a
    # CursorResult, with the rowcount; Session.execute promises only a Result.
    statement = delete(JobRun).where(JobRun.finished_at < cutoff)
    deleted = db.session.connection().execute(statement).rowcount
    db.session.commit()
    logger.info("Pruned %d job run(s) finished before %s.", deleted, cutoff.isoformat())
