"""`flask scheduler ...`: see the jobs, run one now, or run the scheduler on its own."""

import signal
import socket
import threading
from os import getpid

import click
from flask import current_app
from flask.cli import AppGroup

from backend.scheduler.config_jobs import sync_config_jobs
from backend.scheduler.models import JobRun

scheduler_cli = AppGroup("scheduler", help="Scheduled jobs (backend/scheduler).")


@scheduler_cli.command("list")
def list_jobs() -> None:
    """List the jobs in the shared store with their next run times."""
    scheduler = current_app.extensions["scheduler"].flask_scheduler.scheduler
    scheduler.start(paused=True)  # paused: reads the store, runs nothing
    try:
        jobs = scheduler.get_jobs()
    finally:
        scheduler.shutdown(wait=False)
    for job in jobs:
        next_run = job.next_run_time.isoformat() if job.next_run_time else "paused"
        click.echo(f"{job.id}\t{job.trigger}\tnext run: {next_run}")
    for job_id in sorted({job["id"] for job in current_app.config["JOBS"]} - {j.id for j in jobs}):
        click.echo(f"{job_id}\t(in JOBS, not yet in the store: the leader adds it)")


@scheduler_cli.command("run")
@click.argument("job_id")
def run_job_now(job_id: str) -> None:
    """Run one job now, in the foreground, recorded in job_runs like any run."""
    runtime = current_app.extensions["scheduler"]
    scheduler = runtime.flask_scheduler.scheduler
    scheduler.start(paused=True)
    try:
        if scheduler.get_job(job_id) is None:
            config = current_app.config
            sync_config_jobs(scheduler, config["JOBS"], config["SCHEDULER_JOB_DEFAULTS"])
        job = scheduler.get_job(job_id)
        if job is None:
            raise click.ClickException(f"No job {job_id!r} in the store or in JOBS.")
        runtime.executor.owner = f"cli:{socket.gethostname()}:{getpid()}"
        status = runtime.executor.run_now(job)
    finally:
        scheduler.shutdown(wait=False)
    click.echo(f"{job_id}: {status}")
    if status != JobRun.SUCCEEDED:
        raise SystemExit(1)


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
