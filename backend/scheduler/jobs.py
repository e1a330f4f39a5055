"""The scheduler's own maintenance job, named in JOBS (backend/settings.py)."""

import logging
from datetime import timedelta

from sqlalchemy import delete

from backend.database import delete_and_count, utcnow
from backend.scheduler.models import JobRun

logger = logging.getLogger(__name__)


def prune_job_runs(days: int = 30) -> None:
    """Delete finished runs older than `days`: job_runs gains a row per run, forever."""
    cutoff = utcnow() - timedelta(days=days)
    deleted = delete_and_count(delete(JobRun).where(JobRun.finished_at < cutoff))
    logger.info("Pruned %d job run(s) finished before %s.", deleted, cutoff.isoformat())
