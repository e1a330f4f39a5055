"""`flask scheduler ...`: see the jobs, run one now, or run the scheduler on its own."""

import signal
import socket
import threading
from os import getpid

import click
from apscheduler.job import Job
from flask import current_app
from flask.cli import AppGroup

from backend.scheduler.config_jobs import config_job
from backend.scheduler.models import JobRun

scheduler_cli = AppGroup("scheduler", help="Scheduled jobs (backend/scheduler).")


@scheduler_cli.command("list")
def list_jobs() -> None:
    """List the jobs in the shared store with their next run times; changes nothing."""
    stored = current_app.extensions["scheduler"].store.read_jobs()
    for job_id, job in stored:
        if job is None:
            click.echo(f"{job_id}\t(stored, but cannot be loaded: has its function moved?)")
        else:
            next_run = job.next_run_time.isoformat() if job.next_run_time else "paused"
            click.echo(f"{job_id}\t{job.trigger}\tnext run: {next_run}")
    in_store = {job_id for job_id, _ in stored}
    for job_id in sorted({job["id"] for job in current_app.config["JOBS"]} - in_store):
        click.echo(f"{job_id}\t(in JOBS, not yet in the store: the leader adds it)")


@scheduler_cli.command("run")
@click.argument("job_id")
def run_job_now(job_id: str) -> None:
    """Run one job now, in the foreground, recorded in job_runs like any run."""
    runtime = current_app.extensions["scheduler"]
    job = _job_to_run(job_id)
    runtime.executor.owner = f"cli:{socket.gethostname()}:{getpid()}"
    status = runtime.executor.run_now(job)
    click.echo(f"{job_id}: {status}")
    if status != JobRun.SUCCEEDED:
        raise SystemExit(1)


def _job_to_run(job_id: str) -> Job:
    """The stored job, or else the one JOBS defines; no scheduler is started for it."""
    runtime = current_app.extensions["scheduler"]
    try:
        job = runtime.store.lookup_job(job_id)
    except LookupError:
        raise click.ClickException(
            f"Job {job_id!r} is stored with a function that no longer imports."
        ) from None
    if job is not None:
        return job
    config = current_app.config
    for definition in config["JOBS"]:
        if definition.get("id") == job_id:
            scheduler = runtime.flask_scheduler.scheduler
            return config_job(scheduler, definition, config["SCHEDULER_JOB_DEFAULTS"])
    raise click.ClickException(f"No job {job_id!r} in the store or in JOBS.")


@scheduler_cli.command("serve")
def serve() -> None:
    """Take part in running jobs from this process alone, until SIGTERM or Ctrl-C.

    For deployments that keep jobs out of the web workers (SCHEDULER_ENABLED=False
    there); run it on two hosts and one takes over if the other dies.
    """
    stopping = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stopping.set())
    runtime = current_app.extensions["scheduler"]
    runtime.start()
    click.echo("Scheduler running; stop with Ctrl-C or SIGTERM.")
    while not stopping.wait(1):
        pass
    runtime.stop()
