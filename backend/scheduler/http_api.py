"""The scheduler's HTTP API (`SCHEDULER_API_ENABLED`), off by default.

Flask-APScheduler's job routes under `SCHEDULER_API_PREFIX`, behind the API's own
key check with the scope `SCHEDULER_API_SCOPE` (401 without a key, 403 without the
scope). Whichever worker answers, changes land in the shared job store, and the
leader picks them up within a lease interval.

Left out on purpose: its pause/resume/start/shutdown routes act on the one process
that answers, and its run route runs a job inside the request, unrecorded. Adding
or changing a job is limited to the functions named in `JOBS` or
`SCHEDULER_ALLOWED_FUNCS`: Flask-APScheduler would import and call any
"module:function" a client names, such as `os:system`.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, g, request
from flask_apscheduler import api
from flask_apscheduler.auth import HTTPAuth

from backend.auth import requires_scope
from backend.errors import json_error

ROUTES = [
    ("get_jobs", "/jobs", "GET"),
    ("add_job", "/jobs", "POST"),
    ("get_job", "/jobs/<job_id>", "GET"),
    ("update_job", "/jobs/<job_id>", "PATCH"),
    ("delete_job", "/jobs/<job_id>", "DELETE"),
    ("pause_job", "/jobs/<job_id>/pause", "POST"),
    ("resume_job", "/jobs/<job_id>/resume", "POST"),
]
ROUTES_THAT_NAME_A_FUNCTION = {"add_job", "update_job"}


class ApiKeyAuth(HTTPAuth):
    """Flask-APScheduler's auth hook, answered by the API's authenticator."""

    def get_authorization(self) -> dict[str, str]:
        # Raises rebar's Unauthorized or Forbidden, answered as JSON like the API's.
        requires_scope(current_app.config["SCHEDULER_API_SCOPE"]).authenticate()
        return {"client": g.api_client}

    def get_authenticate_header(self) -> str:
        return current_app.config["AUTH_HEADER"]


def view(name: str) -> Callable:
    handler = getattr(api, name)

    @wraps(handler)
    def on_the_shared_store(*args: Any, **kwargs: Any) -> Response:
        scheduler = current_app.extensions["scheduler"].flask_scheduler.scheduler
        if not scheduler.running:
            # A scheduler that never started keeps added jobs in memory only. Paused,
            # it reads and writes the shared store and runs nothing.
            scheduler.start(paused=True)
        if name in ROUTES_THAT_NAME_A_FUNCTION:
            problem = _disallowed_function()
            if problem is not None:
                return problem
        return handler(*args, **kwargs)

    return on_the_shared_store


def _disallowed_function() -> Response | None:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error("Send the job as a JSON object.", 400)
    allowed = allowed_functions(current_app.config)
    if "func" in body and (not isinstance(body["func"], str) or body["func"] not in allowed):
        return json_error(
            "This function may not be scheduled over HTTP.",
            400,
            errors={"func": f"Allowed: {', '.join(sorted(allowed))}."},
        )
    return None


def allowed_functions(config: dict) -> set[str]:
    named_in_jobs = {job["func"] for job in config["JOBS"] if isinstance(job.get("func"), str)}
    return named_in_jobs | set(config["SCHEDULER_ALLOWED_FUNCS"])
