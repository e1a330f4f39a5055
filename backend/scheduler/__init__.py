"""Scheduled jobs that run exactly once per scheduled time, however many processes run the app.

`init_scheduler` builds one app's scheduler: jobs in the database, a leader lease, and
an executor that claims each run time before running it. How the pieces fit, and the
library internals they rely on: README.md beside this file.
"""

import atexit
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

import click
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from flask import Flask
from flask.helpers import get_debug_flag
from flask_apscheduler import APScheduler
from sqlalchemy import select
from werkzeug.serving import is_running_from_reloader

from backend.config_loading import ConfigError
from backend.extensions import db
from backend.scheduler.cli import scheduler_cli
from backend.scheduler.config_jobs import sync_config_jobs
from backend.scheduler.http_api import init_api
from backend.scheduler.leader import LeaseElector
from backend.scheduler.runs import RecordingExecutor, adopt_orphans

logger = logging.getLogger(__name__)

# Seconds the leader waits after a job store error before trying again.
STORE_RETRY_SECONDS = 5.0
# Seconds a stopping leader gives the runs under way to finish (gunicorn allows 30).
DRAIN_SECONDS = 20.0


class SharedJobStore(SQLAlchemyJobStore):
    def __init__(self, executor: RecordingExecutor, **options: object) -> None:
        super().__init__(**options)
        self.executor = executor

    def start(self, scheduler: BackgroundScheduler, alias: str) -> None:
        # Skips SQLAlchemyJobStore.start, which creates the table: the migration does,
        # so that workers booting together do not race, and start needs no database.
        super(SQLAlchemyJobStore, self).start(scheduler, alias)

    def update_job(self, job: Job) -> None:
        # APScheduler moves next_run_time on even when submitting the job failed;
        # when the claim failed, keep it, so the same run times are tried again.
        if job.id not in self.executor.unclaimed:
            super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        # A one-off job whose only run could not be claimed stays, to be tried again.
        if job_id not in self.executor.unclaimed:
            super().remove_job(job_id)

    def read_jobs(self) -> list[tuple[str, Job | None]]:
        """Every stored job by next run time, None for one that no longer loads.

        Unlike get_all_jobs, which deletes the jobs it cannot load, this changes nothing,
        and needs no started scheduler.
        """
        table = self.jobs_t
        query = select(table.c.id, table.c.job_state).order_by(
            table.c.next_run_time.asc().nulls_last(), table.c.id
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        jobs: list[tuple[str, Job | None]] = []
        for row in rows:
            try:
                jobs.append((row.id, self._reconstitute_job(row.job_state)))
            except Exception:  # a moved function, or a pickle from another version
                jobs.append((row.id, None))
        return jobs


class SafeScheduler(BackgroundScheduler):
    def __init__(self, executor: RecordingExecutor) -> None:
        super().__init__()
        self.executor = executor

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            # APScheduler's thread makes one more pass as it shuts down, even paused:
            # a process that never led would claim runs it can no longer start.
            return None
        # In APScheduler 3, a database error while updating a job ends the scheduler
        # thread silently. Here it is logged, and the next pass comes a little later.
        try:
            wait = super()._process_jobs()
        except Exception:
            if self.state != STATE_RUNNING:
                return None  # paused or shut down during the pass: the stop's doing, no fault
            logger.exception("Scheduler: a pass failed; retrying.")
            return STORE_RETRY_SECONDS
        if self.executor.unclaimed:
            # Claims failed, so those jobs are still due: try again later, not at once.
            self.executor.unclaimed.clear()
            return max(wait or 0, STORE_RETRY_SECONDS)
        return wait


class FlaskScheduler(APScheduler):
    def _load_jobs(self) -> None:
        """JOBS are synced by the leader (config_jobs.py), not added at every start."""

    def _load_api(self) -> None:
        """The HTTP API is http_api.py's own, registered by init_scheduler."""


@dataclass
class Runtime:
    """The scheduler of one app, in `app.extensions["scheduler"]`."""

    flask_scheduler: FlaskScheduler
    executor: RecordingExecutor
    elector: LeaseElector
    store: SharedJobStore
    starting: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Take part in running jobs. Call once per process, after any fork."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.elector.owner = self.executor.owner = owner
        # Paused until elected; a paused scheduler still reads and writes the shared store.
        self.flask_scheduler.scheduler.start(paused=True)
        self.elector.start()

    def stop(self) -> None:
        """Finish the runs under way, then hand the jobs over to another instance."""
        scheduler = self.flask_scheduler.scheduler
        if not scheduler.running:
            return
        if self.elector.is_leader:
            scheduler.pause()
            # The lease is still renewed meanwhile, so no one else starts these jobs.
            self.executor.drain(DRAIN_SECONDS)
        # A run still going past the drain keeps its lease until it expires: handing
        # over now could start the job's next run beside it.
        self.elector.stop(release=not self.executor.active)
        scheduler.shutdown(wait=False)

    def open_store(self) -> BackgroundScheduler:
        """The scheduler, started paused if nothing started it, for changing jobs.

        A scheduler that never started keeps added jobs in memory only; paused, it reads
        and writes the shared store and runs nothing.
        """
        scheduler = self.flask_scheduler.scheduler
        with self.starting:  # two requests at once must not both start it
            if not scheduler.running:
                scheduler.start(paused=True)
        return scheduler


def init_scheduler(app: Flask) -> None:
    """Set up the scheduler of this app; nothing runs and nothing connects yet."""
    if app.config["SCHEDULER_LEASE_TTL"] <= 2 * app.config["SCHEDULER_LEASE_INTERVAL"]:
        raise ConfigError(
            "Config error: SCHEDULER_LEASE_TTL must be more than twice SCHEDULER_LEASE_INTERVAL, "
            "or a leader could lose its lease between two renewals."
        )
    with app.app_context():
        engine = db.engine
    executor = RecordingExecutor(app, engine)
    store = SharedJobStore(executor, engine=engine)
    app.config["SCHEDULER_JOBSTORES"] = {"default": store}
    app.config["SCHEDULER_EXECUTORS"] = {"default": executor}
    # One APScheduler per app: it owns threads, and tests build many apps.
    flask_scheduler = FlaskScheduler(scheduler=SafeScheduler(executor), app=app)
    scheduler = flask_scheduler.scheduler
    scheduler.jobstore_retry_interval = STORE_RETRY_SECONDS

    def on_elected() -> None:
        adopted = adopt_orphans(engine, elector.owner, set(executor.in_hand))
        sync_config_jobs(scheduler, app.config["JOBS"], app.config["SCHEDULER_JOB_DEFAULTS"])
        for job_id, claimed in adopted.items():
            job = scheduler.get_job(job_id)
            if job is not None:
                executor.enqueue(job, claimed)
        scheduler.resume()
        logger.info("Scheduler: this instance now runs the jobs (%s).", elector.owner)

    def on_demoted() -> None:
        # Also called when a takeover failed because the process is shutting it down.
        if scheduler.running:
            scheduler.pause()
        logger.info("Scheduler: this instance no longer runs the jobs.")

    elector = LeaseElector(
        engine,
        on_elected,
        on_demoted,
        # Jobs added by other processes wake the leader no other way.
        on_tick=scheduler.wakeup,
        ttl=app.config["SCHEDULER_LEASE_TTL"],
        interval=app.config["SCHEDULER_LEASE_INTERVAL"],
    )
    app.extensions["scheduler"] = Runtime(flask_scheduler, executor, elector, store)
    app.cli.add_command(scheduler_cli)
    if app.config["SCHEDULER_API_ENABLED"]:
        init_api(app)

    if app.config["SCHEDULER_ENABLED"] and started_by_development_server():
        start_scheduler(app)
        atexit.register(stop_scheduler, app)  # the reloader restarts often: free the lease


def start_scheduler(app: Flask) -> None:
    app.extensions["scheduler"].start()


def stop_scheduler(app: Flask) -> None:
    app.extensions["scheduler"].stop()


def started_by_development_server() -> bool:
    """True in the process of `flask run` that serves: never the reloader's watcher."""
    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run":
        return False  # gunicorn, tests, other flask commands
    reload = context.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return is_running_from_reloader() or not reload
