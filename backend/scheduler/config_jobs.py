"""Keeping the job store in step with `JOBS` from config, without postponing anything.

Flask-APScheduler would add every config job at every start with
`replace_existing`, which gives each one a fresh next run time: with frequent
deploys, a daily job could be pushed back forever. Here the leader adds the jobs
that are missing, replaces the ones whose definition changed, and leaves the
others, and their next run time, alone.
"""

import logging
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask_apscheduler.utils import fix_job_def, pop_trigger

logger = logging.getLogger(__name__)

TRIGGERS = {"interval": IntervalTrigger, "cron": CronTrigger, "date": DateTrigger}
# APScheduler's own defaults, for options SCHEDULER_JOB_DEFAULTS leaves out.
JOB_OPTIONS = {"misfire_grace_time": 1, "coalesce": True, "max_instances": 1}


def sync_config_jobs(
    scheduler: BaseScheduler, definitions: list[dict], job_defaults: dict[str, Any]
) -> None:
    for definition in definitions:
        try:
            _sync(scheduler, definition, job_defaults)
        except Exception:
            # One broken definition must not keep every other job from running.
            logger.exception("Scheduler: job %s could not be synced.", definition.get("id"))


def config_job(scheduler: BaseScheduler, definition: dict, job_defaults: dict[str, Any]) -> Job:
    """The job a `JOBS` entry describes, built but not stored."""
    return _job_from(scheduler, _spec(definition, job_defaults))


def _spec(definition: dict, job_defaults: dict[str, Any]) -> dict:
    spec = dict(definition)
    fix_job_def(spec)
    spec.setdefault("name", spec["id"])
    for option, default in JOB_OPTIONS.items():
        spec.setdefault(option, job_defaults.get(option, default))
    return spec


def _sync(scheduler: BaseScheduler, definition: dict, job_defaults: dict[str, Any]) -> None:
    spec = _spec(definition, job_defaults)
    try:
        stored = scheduler.get_job(spec["id"])
    except LookupError:
        stored = None  # stored with a function that no longer imports: replace it
    explicit_start = "start_date" in spec
    wanted = _job_from(scheduler, spec)
    if stored is not None and _fingerprint(stored, explicit_start) == _fingerprint(
        wanted, explicit_start
    ):
        return
    spec["replace_existing"] = True
    scheduler.add_job(**spec)
    logger.info("Scheduler: job %s %s.", spec["id"], "changed" if stored else "added")


def _job_from(scheduler: BaseScheduler, spec: dict) -> Job:
    """The job as the definition describes it, built only to compare, never stored."""
    trigger_name, trigger_args = pop_trigger(dict(spec))
    trigger_args.setdefault("timezone", scheduler.timezone)
    return Job(
        scheduler,
        id=spec["id"],
        func=spec["func"],
        trigger=TRIGGERS[trigger_name](**trigger_args),
        args=tuple(spec.get("args", ())),
        kwargs=dict(spec.get("kwargs", {})),
        name=spec["name"],
        executor=spec.get("executor", "default"),
        **{option: spec[option] for option in JOB_OPTIONS},
    )


def _fingerprint(job: Job, explicit_start: bool) -> tuple:
    trigger = job.trigger.__getstate__()
    trigger["type"] = type(job.trigger).__name__
    trigger["timezone"] = str(trigger.get("timezone"))
    if "fields" in trigger:
        trigger["fields"] = [str(field) for field in trigger["fields"]]
    if not explicit_start:
        # An interval trigger starts "now" by default, which differs at every start.
        trigger.pop("start_date", None)
    options = tuple(getattr(job, option) for option in JOB_OPTIONS)
    trigger_state = sorted(trigger.items())
    return (
        job.func_ref,
        tuple(job.args),
        job.kwargs,
        job.name,
        job.executor,
        options,
        trigger_state,
    )
