"""The scheduler's HTTP API (`SCHEDULER_API_ENABLED`, off by default): jobs in the shared store.

Routes under `SCHEDULER_API_PREFIX`, for keys with `SCHEDULER_API_SCOPE`, in
Flask-APScheduler's job format. Its own views are not used: they answer a bad
definition with 500 and the exception's text, import any function a client names,
and some act on the answering process alone (pause, shutdown) or run a job unrecorded.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from flask import Blueprint, Flask, Response, current_app, request
from flask_apscheduler.json import jsonify
from flask_rebar import errors, messages
from flask_rebar.utils.request_utils import raise_400_for_marshmallow_errors
from marshmallow import Schema, ValidationError

from backend.auth import requires_scope
from backend.scheduler.models import JOB_ID_LENGTH
from backend.scheduler.schemas import (
    CreateJobSchema,
    UpdateJobSchema,
    check_allowed,
    check_arguments,
    make_trigger,
)

scheduler_api = Blueprint("scheduler", __name__)


def init_api(app: Flask) -> None:
    app.register_blueprint(scheduler_api, url_prefix=app.config["SCHEDULER_API_PREFIX"])


@scheduler_api.before_request
def authenticate() -> None:
    """401 without a key, 403 without the scope, answered like the API's."""
    requires_scope(current_app.config["SCHEDULER_API_SCOPE"]).authenticate()


@scheduler_api.get("/jobs")
def list_jobs() -> Response:
    return jsonify(_scheduler().get_jobs())


@scheduler_api.post("/jobs")
def add_job() -> Response:
    definition = _load_job(CreateJobSchema())
    definition.setdefault("name", definition["id"])
    try:
        job = _scheduler().add_job(**definition)
    except ConflictingIdError:
        raise errors.Conflict(f"Job {definition['id']} already exists.") from None
    return jsonify(job)


@scheduler_api.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    return jsonify(_job_or_404(job_id))


@scheduler_api.patch("/jobs/<job_id>")
def update_job(job_id: str) -> Response:
    scheduler = _scheduler()
    changes = _load_job(UpdateJobSchema(), current=_job_or_404(job_id))
    if "trigger" in changes:
        now = datetime.now(scheduler.timezone)
        changes["next_run_time"] = changes["trigger"].get_next_fire_time(None, now)
    with _gone_is_404(job_id):
        return jsonify(scheduler.modify_job(job_id, **changes))


@scheduler_api.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    if not _storable(job_id):
        _not_found(job_id)
    with _gone_is_404(job_id):
        _scheduler().remove_job(job_id)
    return Response(status=204)


@scheduler_api.post("/jobs/<job_id>/pause")
def pause_job(job_id: str) -> Response:
    _job_or_404(job_id)
    with _gone_is_404(job_id):
        return jsonify(_scheduler().pause_job(job_id))


@scheduler_api.post("/jobs/<job_id>/resume")
def resume_job(job_id: str) -> Response:
    _job_or_404(job_id)
    with _gone_is_404(job_id):
        job = _scheduler().resume_job(job_id)
    if job is None:
        raise errors.NotFound(f"Job {job_id} had no run times left, and was removed.")
    return jsonify(job)


def _scheduler() -> BaseScheduler:
    return current_app.extensions["scheduler"].open_store()


def _storable(job_id: str) -> bool:
    # JOBS may name ids the API refuses, but none the store could not hold: those
    # would fail in the database (PostgreSQL refuses NUL), so they are 404 at once.
    return len(job_id) <= JOB_ID_LENGTH and "\x00" not in job_id


def _not_found(job_id: str) -> NoReturn:
    raise errors.NotFound(f"Job {job_id} not found.")


def _job_or_404(job_id: str) -> Job:
    """The stored job; 404 if there is none, 409 if it is stored but does not load."""
    if not _storable(job_id):
        _not_found(job_id)
    try:
        job = _scheduler().get_job(job_id)
    except LookupError:
        raise errors.Conflict(
            f"Job {job_id} is stored with a function that no longer imports: delete it, "
            "or let a leader replace it from JOBS."
        ) from None
    if job is None:
        _not_found(job_id)
    return job


@contextmanager
def _gone_is_404(job_id: str) -> Iterator[None]:
    """For a job deleted by another request since it was looked up."""
    try:
        yield
    except JobLookupError:
        _not_found(job_id)


def _load_job(schema: Schema, current: Job | None = None) -> dict[str, Any]:
    """The body, checked, as arguments for add_job or modify_job; 400 naming the field if not."""
    try:
        job = schema.load(_json_object())
        if "trigger" in job:
            job["trigger"] = make_trigger(job, _scheduler().timezone)
        if "func" in job:
            check_allowed(job["func"], allowed_functions(current_app.config))
        if job.keys() & {"func", "args", "kwargs"}:
            stored = (
                {"func": current.func_ref, "args": current.args, "kwargs": current.kwargs}
                if current
                else {"args": (), "kwargs": {}}
            )
            call = {**stored, **job}
            check_arguments(call["func"], call["args"], call["kwargs"])
    except ValidationError as error:
        raise_400_for_marshmallow_errors(error.messages_dict, messages.body_validation_failed)
    return job


def _json_object() -> dict[str, Any]:
    try:
        # json.loads rather than request.get_json: NaN is refused, and deep nesting
        # (RecursionError) is a bad body, not a server error.
        body = json.loads(request.get_data(), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise errors.BadRequest("Send the job as a JSON object.")
    return body


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def allowed_functions(config: dict) -> set[str]:
    named_in_jobs = {job["func"] for job in config["JOBS"] if isinstance(job.get("func"), str)}
    return named_in_jobs | set(config["SCHEDULER_ALLOWED_FUNCS"])
