"""Claims each scheduled time in `job_runs` before running it, runs it in a clean app
context, and records the outcome (README.md: "Runs").
"""

import logging
import threading
import time
import traceback
from collections import deque
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from flask import Flask, g
from prometheus_client import Counter
from sqlalchemy import Engine, Row, update

from backend.database import utcnow
from backend.scheduler.leader import insert_for
from backend.scheduler.models import JobRun

logger = logging.getLogger(__name__)

ClaimedRun = tuple[int, datetime]  # (job_runs.id, scheduled run time)
CLAIMS_PER_STATEMENT = 500

# Served at GET /metrics (backend/metrics.py), counted by the process that ran the job or,
# for "interrupted", by the leader that found the run cut short.
JOB_RUNS = Counter("scheduler_job_runs", "Scheduled job runs by outcome.", ["job", "status"])


class RecordingExecutor(ThreadPoolExecutor):
    def __init__(self, app: Flask, engine: Engine) -> None:
        super().__init__()
        self.app = app
        self.engine = engine
        self.owner = ""  # set in the process that runs, after any fork
        self.queues: dict[str, deque[tuple[Job, int, datetime]]] = {}
        self.active: set[str] = set()  # jobs whose queue a pool thread is working through
        self.in_hand: set[int] = set()  # job_runs ids queued or running here
        self.unclaimed: set[str] = set()  # see SharedJobStore.update_job
        self.draining = False
        self.queue_lock = threading.Lock()

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        """Called by the scheduler thread, before the job's next_run_time moves on."""
        try:
            claimed = claim_runs(self.engine, self.owner, job.id, run_times)
        except Exception:
            self.unclaimed.add(job.id)
            raise  # APScheduler logs it; the same times are tried again
        self.enqueue(job, claimed)

    def enqueue(self, job: Job, claimed: list[ClaimedRun]) -> None:
        with self.queue_lock:
            queue = self.queues.setdefault(job.id, deque())
            queue.extend((job, run_id, run_time) for run_id, run_time in claimed)
            self.in_hand.update(run_id for run_id, _ in claimed)
            if job.id in self.active or not queue:
                return
            self.active.add(job.id)
        self._pool.submit(self._work_through, job.id)

    def run_now(self, job: Job) -> str:
        """Run the job once, here and now, recorded like a scheduled run; its status."""
        [(run_id, run_time)] = claim_runs(self.engine, self.owner, job.id, [utcnow()])
        return self._run(job, run_id, run_time)

    def drain(self, timeout: float) -> None:
        """Let the runs under way finish; queued ones stay pending for the next leader."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.05)

    def _work_through(self, job_id: str) -> None:
        while True:
            with self.queue_lock:
                queue = self.queues[job_id]
                if not queue or self.draining:
                    self.active.discard(job_id)
                    return
                job, run_id, run_time = queue.popleft()
            try:
                self._run(job, run_id, run_time)
            except Exception:
                logger.exception("Job %s: could not record its run at %s", job_id, run_time)
            finally:
                self.in_hand.discard(run_id)

    def _run(self, job: Job, run_id: int, run_time: datetime) -> str:
        if not self._mark(run_id, JobRun.PENDING, JobRun.RUNNING, started_at=utcnow()):
            # Taken over by a newer leader, or the database is down: a leader adopts it.
            return JobRun.PENDING
        with self.app.app_context():
            g.job_run = {"job_id": job.id, "scheduled_run_time": run_time, "run_id": run_id}
            events = run_job(job, "default", [run_time], self._logger.name)
        status, error = JobRun.SUCCEEDED, None
        for event in events:
            if event.code == EVENT_JOB_ERROR:
                status = JobRun.FAILED
                error = "".join(traceback.format_exception(event.exception))
            elif event.code == EVENT_JOB_MISSED:
                status = JobRun.MISSED
        JOB_RUNS.labels(job.id, status).inc()
        self._mark(run_id, JobRun.RUNNING, status, finished_at=utcnow(), error=error)
        return status

    def _mark(self, run_id: int, current: str, status: str, **values: Any) -> bool:
        """Move a run of ours on from `current`; False if it is no longer ours to move."""
        statement = (
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.status == current, JobRun.owner == self.owner)
            .values(status=status, **values)
        )
        for attempt in range(10):
            try:
                with self.engine.begin() as connection:
                    return connection.execute(statement).rowcount == 1
            except Exception as error:
                if self.draining:
                    break
                logger.warning(
                    "Job run %s: could not record %s, retrying: %s", run_id, status, error
                )
                time.sleep(min(1 + 2 * attempt, 10))
        logger.error("Job run %s: gave up recording %s; the next leader will.", run_id, status)
        return False


def claim_runs(
    engine: Engine, owner: str, job_id: str, run_times: list[datetime]
) -> list[ClaimedRun]:
    """Insert a pending row per run time; return the ones this instance won, in order."""
    if not run_times:
        return []
    by_utc = {as_utc(run_time): run_time for run_time in run_times}
    rows: list[Row[tuple[int, datetime]]] = []
    with engine.begin() as connection:
        # In chunks: a long catch-up can have more times than one statement may carry.
        for start in range(0, len(run_times), CLAIMS_PER_STATEMENT):
            chunk = run_times[start : start + CLAIMS_PER_STATEMENT]
            statement = (
                insert_for(engine)(JobRun)
                .values(
                    [
                        {
                            "job_id": job_id,
                            "scheduled_run_time": as_utc(run_time),
                            "status": JobRun.PENDING,
                            "owner": owner,
                        }
                        for run_time in chunk
                    ]
                )
                .on_conflict_do_nothing(index_elements=["job_id", "scheduled_run_time"])
                .returning(JobRun.id, JobRun.scheduled_run_time)
            )
            rows += connection.execute(statement).all()
    if len(rows) < len(run_times):
        logger.warning(
            "Job %s: %d run(s) already claimed by another instance; skipped.",
            job_id,
            len(run_times) - len(rows),
        )
    won = [(row.id, by_utc[as_utc(row.scheduled_run_time)]) for row in rows]
    return sorted(won, key=lambda claimed: claimed[1])


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive UTC, PostgreSQL aware values: compare them alike.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def adopt_orphans(engine: Engine, owner: str, in_hand: set[int]) -> dict[str, list[ClaimedRun]]:
    """On taking over: record runs left under way, and take over claims left unrun.

    Left by a previous leader, or by this instance before the database went away:
    anything not queued or running here (`in_hand`).
    """
    with engine.begin() as connection:
        interrupted = connection.scalars(
            update(JobRun)
            .where(JobRun.status == JobRun.RUNNING, JobRun.id.not_in(in_hand))
            .values(
                status=JobRun.INTERRUPTED,
                finished_at=utcnow(),
                error="Cut short: the instance running it stopped.",
            )
            .returning(JobRun.job_id)
        ).all()
        pending = connection.execute(
            update(JobRun)
            .where(JobRun.status == JobRun.PENDING, JobRun.id.not_in(in_hand))
            .values(owner=owner)
            .returning(JobRun.id, JobRun.job_id, JobRun.scheduled_run_time)
        ).all()
    for job_id in interrupted:
        JOB_RUNS.labels(job_id, JobRun.INTERRUPTED).inc()
    if interrupted:
        logger.warning(
            "Scheduler: %d run(s) were cut short by a stop or an outage.", len(interrupted)
        )
    adopted: dict[str, list[ClaimedRun]] = {}
    for row in sorted(pending, key=lambda row: row.scheduled_run_time):
        adopted.setdefault(row.job_id, []).append((row.id, as_utc(row.scheduled_run_time)))
    if pending:
        logger.warning(
            "Scheduler: took over %d run(s) a previous leader had claimed.", len(pending)
        )
    return adopted
