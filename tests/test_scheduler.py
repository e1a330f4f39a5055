"""Scheduled jobs: exactly once per scheduled time, recorded, led by one instance at a time."""

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import click
import pytest
from apscheduler.job import Job
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend.extensions import db
from backend.scheduler import started_by_development_server
from backend.scheduler.config_jobs import sync_config_jobs
from backend.scheduler.leader import LeaseElector
from backend.scheduler.models import JobRun
from backend.scheduler.runs import adopt_orphans, as_utc, claim_runs
from tests import scheduled_jobs
from tests.conftest import AUTH_KEY, READ_SCOPES, REPORTING_KEY, TEST_DATABASE_URL, error_body


def every_second(job_id: str, func: str = "tests.scheduled_jobs:record") -> dict:
    return {"id": job_id, "func": func, "trigger": "interval", "seconds": 1}


@pytest.fixture
def scheduler_app_factory(make_app, tmp_path):
    """Apps on one database a scheduler can use from several threads: a file, not memory."""
    uri = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'scheduler.db'}"
    started = []

    def make(**overrides):
        # A short lease, so that hand-overs take a fraction of a second.
        config = {"SCHEDULER_LEASE_TTL": 1.5, "SCHEDULER_LEASE_INTERVAL": 0.25}
        app = make_app(SQLALCHEMY_DATABASE_URI=uri, **(config | overrides))
        with app.app_context():
            db.create_all()
        started.append(app)
        return app

    scheduled_jobs.seen.clear()
    yield make
    for app in started:
        app.extensions["scheduler"].stop()


def runs(app, job_id: str | None = None) -> list[JobRun]:
    with app.app_context():
        query = select(JobRun).order_by(JobRun.scheduled_run_time)
        if job_id:
            query = query.where(JobRun.job_id == job_id)
        return list(db.session.scalars(query))


def wait_for(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def assert_one_second_apart(times: list[datetime]) -> None:
    gaps = {(as_utc(later) - as_utc(earlier)).total_seconds() for earlier, later in pairwise(times)}
    assert gaps == {1.0}, gaps


def test_config_job_runs_once_per_scheduled_time_and_is_recorded(scheduler_app_factory):
    app = scheduler_app_factory(JOBS=[every_second("tick")])
    app.extensions["scheduler"].start()

    wait_for(lambda: len([r for r in runs(app) if r.status == JobRun.SUCCEEDED]) >= 3)
    app.extensions["scheduler"].stop()

    # A time claimed just as the scheduler stopped stays pending, for the next leader.
    recorded = [run for run in runs(app, "tick") if run.status != JobRun.PENDING]
    assert all(run.status == JobRun.SUCCEEDED for run in recorded)
    assert all(run.started_at and run.finished_at and run.error is None for run in recorded)
    assert_one_second_apart([run.scheduled_run_time for run in recorded])
    # The job saw its own scheduled time, and each run had a session of its own.
    assert [as_utc(seen["scheduled_run_time"]) for seen in scheduled_jobs.seen] == [
        as_utc(run.scheduled_run_time) for run in recorded
    ]
    assert len({id(seen["session"]) for seen in scheduled_jobs.seen}) == len(recorded)


def test_two_instances_share_the_jobs_without_running_a_time_twice(scheduler_app_factory):
    first = scheduler_app_factory(JOBS=[every_second("tick")])
    second = scheduler_app_factory(JOBS=[every_second("tick")])
    first.extensions["scheduler"].start()
    second.extensions["scheduler"].start()
    wait_for(lambda: len(runs(first)) >= 3)

    leader, follower = (
        (first, second) if first.extensions["scheduler"].elector.is_leader else (second, first)
    )
    assert not follower.extensions["scheduler"].elector.is_leader
    leader.extensions["scheduler"].stop()  # hands over at once
    handed_over = len(runs(first))
    wait_for(lambda: len(runs(first)) >= handed_over + 3)
    follower.extensions["scheduler"].stop()

    recorded = [run for run in runs(first, "tick") if run.status != JobRun.PENDING]
    assert {run.owner for run in recorded} == {
        first.extensions["scheduler"].elector.owner,
        second.extensions["scheduler"].elector.owner,
    }
    assert all(run.status == JobRun.SUCCEEDED for run in recorded)
    assert_one_second_apart([run.scheduled_run_time for run in recorded])
    assert len(scheduled_jobs.seen) == len(recorded)


def test_a_failing_job_is_recorded_and_the_others_go_on(scheduler_app_factory, caplog):
    app = scheduler_app_factory(
        JOBS=[every_second("broken", "tests.scheduled_jobs:fail"), every_second("tick")]
    )
    app.extensions["scheduler"].start()
    wait_for(lambda: len(runs(app, "broken")) >= 2 and len(runs(app, "tick")) >= 2)
    app.extensions["scheduler"].stop()

    failed = [run for run in runs(app, "broken") if run.finished_at]
    assert failed and all(run.status == JobRun.FAILED for run in failed)
    assert failed[0].error.startswith("Traceback (most recent call last):")
    assert failed[0].error.endswith("RuntimeError: failed on purpose\n")
    assert all(run.status == JobRun.SUCCEEDED for run in runs(app, "tick") if run.finished_at)
    assert any(record.exc_info and "broken" in record.getMessage() for record in caplog.records)


def test_each_run_gets_a_clean_session_that_is_released(scheduler_app_factory):
    app = scheduler_app_factory(
        JOBS=[every_second("session", "tests.scheduled_jobs:check_session")]
    )
    runtime = app.extensions["scheduler"]
    runtime.executor.owner = "test"
    runtime.flask_scheduler.scheduler.start(paused=True)
    with app.app_context():
        sync_config_jobs(
            runtime.flask_scheduler.scheduler,
            app.config["JOBS"],
            app.config["SCHEDULER_JOB_DEFAULTS"],
        )
    job = runtime.flask_scheduler.scheduler.get_job("session")

    assert runtime.executor.run_now(job) == JobRun.SUCCEEDED
    assert runtime.executor.run_now(job) == JobRun.SUCCEEDED
    assert scheduled_jobs.seen == [{"clean": True}, {"clean": True}]
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
    runtime.flask_scheduler.scheduler.shutdown(wait=False)


def test_a_run_time_can_be_claimed_only_once(scheduler_app_factory):
    app = scheduler_app_factory()
    moment = datetime(2030, 1, 1, 12, tzinfo=UTC)
    later = moment + timedelta(seconds=1)
    with app.app_context():
        engine = db.engine

    first = claim_runs(engine, "first", "job", [moment])
    second = claim_runs(engine, "second", "job", [moment, later])

    assert [run_time for _, run_time in first] == [moment]
    assert [run_time for _, run_time in second] == [later]
    assert [(run.owner, as_utc(run.scheduled_run_time)) for run in runs(app)] == [
        ("first", moment),
        ("second", later),
    ]


def test_a_new_leader_records_cut_short_runs_and_takes_over_claims(scheduler_app_factory):
    app = scheduler_app_factory()
    moment = datetime(2030, 1, 1, 12, tzinfo=UTC)
    with app.app_context():
        engine = db.engine
    [(running_id, _)] = claim_runs(engine, "dead", "job", [moment])
    [(pending_id, _)] = claim_runs(engine, "dead", "job", [moment + timedelta(seconds=1)])
    with app.app_context():
        db.session.get(JobRun, running_id).status = JobRun.RUNNING
        db.session.commit()

    adopted = adopt_orphans(engine, "new", set())

    assert adopted == {"job": [(pending_id, moment + timedelta(seconds=1))]}
    by_id = {run.id: run for run in runs(app)}
    assert by_id[running_id].status == JobRun.INTERRUPTED
    assert by_id[running_id].error == "Cut short: the instance running it stopped."
    assert (by_id[pending_id].status, by_id[pending_id].owner) == (JobRun.PENDING, "new")


def stored_jobs(app, definitions):
    """Sync `definitions` into the store, as a leader does; {id: next run time}."""
    scheduler = app.extensions["scheduler"].flask_scheduler.scheduler
    scheduler.start(paused=True)
    try:
        sync_config_jobs(scheduler, definitions, app.config["SCHEDULER_JOB_DEFAULTS"])
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)


def move_stored_function(app, old: bytes, new: bytes) -> None:
    """As if the function of the one stored job were renamed after it was stored."""
    with app.app_context():
        table = db.metadata.tables["apscheduler_jobs"]
        state = db.session.execute(select(table.c.job_state)).scalar_one()
        db.session.execute(table.update().values(job_state=state.replace(old, new)))
        db.session.commit()


def test_config_jobs_are_added_once_and_unchanged_ones_keep_their_next_run(scheduler_app_factory):
    daily = {"id": "daily", "func": "tests.scheduled_jobs:record", "trigger": "cron", "hour": 3}
    hourly = {
        "id": "hourly",
        "func": "tests.scheduled_jobs:record",
        "trigger": "interval",
        "hours": 1,
    }
    first = stored_jobs(scheduler_app_factory(), [daily, hourly])
    time.sleep(1.1)

    again = stored_jobs(scheduler_app_factory(), [daily, hourly])
    changed = stored_jobs(scheduler_app_factory(), [daily, {**hourly, "hours": 2}])

    assert set(first) == {"daily", "hourly"}
    assert again == first  # a restart postpones nothing
    assert changed["daily"] == first["daily"]
    assert changed["hourly"] > first["hourly"]  # rescheduled from its new definition


def test_only_one_elector_leads_and_a_dead_leaders_lease_expires(scheduler_app_factory):
    app = scheduler_app_factory()
    with app.app_context():
        engine = db.engine

    def elector(owner):
        candidate = LeaseElector(
            engine, lambda: None, lambda: None, lambda: None, ttl=1, interval=0.2
        )
        candidate.owner = owner
        return candidate

    first, second = elector("first"), elector("second")
    assert first.acquire_or_renew()
    assert not second.acquire_or_renew()
    assert first.acquire_or_renew()  # renewing
    time.sleep(1.2)  # first died without releasing
    assert second.acquire_or_renew()
    assert not first.acquire_or_renew()
    second.release()
    assert first.acquire_or_renew()  # at once after a clean hand-over


def test_leader_steps_down_when_it_cannot_renew(scheduler_app_factory, monkeypatch):
    app = scheduler_app_factory()
    with app.app_context():
        engine = db.engine
    clock = [1000.0]
    monkeypatch.setattr("backend.scheduler.leader.time.monotonic", lambda: clock[0])
    events = []
    candidate = LeaseElector(
        engine,
        lambda: events.append("elected"),
        lambda: events.append("demoted"),
        lambda: None,
        5,
        1,
    )
    candidate.owner = "only"
    candidate.tick()
    assert candidate.is_leader

    def database_down():
        raise ConnectionError("database down")

    monkeypatch.setattr(candidate, "acquire_or_renew", database_down)
    clock[0] += 3.9
    candidate.tick()
    assert candidate.is_leader  # within its lease, less the interval
    clock[0] += 0.2
    candidate.tick()
    assert not candidate.is_leader  # before anyone else may take over (5 s)
    assert events == ["elected", "demoted"]


def test_a_job_whose_function_moved_is_replaced_and_others_still_sync(scheduler_app_factory):
    app = scheduler_app_factory()
    moved = {
        "id": "moved",
        "func": "tests.scheduled_jobs:record",
        "trigger": "interval",
        "hours": 1,
    }
    stored_jobs(app, [moved])
    move_stored_function(app, b"tests.scheduled_jobs:record", b"tests.scheduled_gone:record")
    broken_definition = {
        "id": "broken",
        "func": "no.such:function",
        "trigger": "interval",
        "hours": 1,
    }

    jobs = stored_jobs(app, [moved, broken_definition, {**moved, "id": "other"}])

    assert set(jobs) == {"moved", "other"}


def test_failing_claims_are_retried_later_not_in_a_hot_loop(scheduler_app_factory, monkeypatch):
    attempts = []

    def failing_claim(*args):
        attempts.append(1)
        raise ConnectionError("database refuses writes")

    monkeypatch.setattr("backend.scheduler.runs.claim_runs", failing_claim)
    app = scheduler_app_factory(
        JOBS=[every_second("tick")], SCHEDULER_LEASE_TTL=3, SCHEDULER_LEASE_INTERVAL=1
    )
    app.extensions["scheduler"].start()
    wait_for(lambda: attempts, timeout=10)
    time.sleep(3)
    app.extensions["scheduler"].stop()

    # A pass comes only with the leader's tick (every second here), not at once again.
    assert len(attempts) <= 8  # about one a second, where a hot loop made thousands
    assert runs(app) == []


def test_own_unstarted_claims_are_taken_up_again_after_an_outage(scheduler_app_factory):
    app = scheduler_app_factory()
    moment = datetime(2030, 1, 1, 12, tzinfo=UTC)
    with app.app_context():
        engine = db.engine
    [(run_id, _)] = claim_runs(engine, "me", "job", [moment])

    assert adopt_orphans(engine, "me", in_hand={run_id}) == {}
    assert adopt_orphans(engine, "me", in_hand=set()) == {"job": [(run_id, moment)]}


@pytest.mark.parametrize(
    ("command", "reload", "reloader_child", "expected"),
    [
        ("run", True, False, False),  # the reloader's watcher
        ("run", True, True, True),  # the reloader's child, which serves
        ("run", False, False, True),  # flask run --no-reload
        ("upgrade", None, False, False),  # flask db upgrade, and any other command
    ],
)
def test_development_server_runs_jobs_in_one_process_only(
    monkeypatch, command, reload, reloader_child, expected
):
    if reloader_child:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    else:
        monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    context = click.Context(click.Command(command), info_name=command)
    context.params["reload"] = reload
    with context:
        assert started_by_development_server() is expected


def test_no_scheduler_starts_outside_a_server(scheduler_app_factory):
    app = scheduler_app_factory(JOBS=[every_second("tick")])

    assert not app.extensions["scheduler"].flask_scheduler.scheduler.running


def test_the_app_starts_and_serves_while_the_database_is_down(make_app, caplog):
    app = make_app(
        SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:1/x",
        SCHEDULER_LEASE_INTERVAL=0.2,
        JOBS=[every_second("tick")],
    )
    runtime = app.extensions["scheduler"]
    runtime.start()
    try:
        wait_for(lambda: runtime.elector.database_down, timeout=5)
        assert app.test_client().get("/health").status_code == 503
        assert not runtime.elector.is_leader
    finally:
        runtime.stop()
    assert any(message.startswith("Scheduler: database unreachable") for message in caplog.messages)


def test_scheduler_api_is_off_by_default(client, auth_headers):
    assert client.get("/scheduler/jobs", headers=auth_headers).status_code == 404


OPS = {"X-AUTH-API-KEY": "ops-key"}
HOURLY = {
    "id": "hourly",
    "func": "backend.features.items.jobs:log_item_counts",
    "trigger": "interval",
    "hours": 1,
}
PRUNE = "backend.scheduler.jobs:prune_job_runs"  # takes days=30
# What an answer must never show: exception text, SQL, Flask-APScheduler's own shape.
LEAKS = (
    "Traceback",
    "Error",
    "SQL",
    "INSERT",
    "psycopg",
    "sqlite",
    "__init__",
    "keyword argument",
    "error_message",
)


@pytest.fixture
def api_app(scheduler_app_factory):
    app = scheduler_app_factory(
        SCHEDULER_API_ENABLED=True,
        API_CLIENTS={
            "ops": {"key": "ops-key", "scopes": ["scheduler:admin"]},
            "reporting": {"key": REPORTING_KEY, "scopes": READ_SCOPES},
        },
    )
    # What every process that is not the leader does: a paused scheduler on the store.
    app.extensions["scheduler"].flask_scheduler.scheduler.start(paused=True)
    return app


@pytest.fixture
def ops_client(api_app):
    return api_app.test_client()


def stored_job_states(app) -> dict[str, bytes]:
    with app.app_context():
        table = db.metadata.tables["apscheduler_jobs"]
        return dict(db.session.execute(select(table.c.id, table.c.job_state)).all())


def assert_error(response, status: int) -> None:
    """A JSON error in the app's shape, with nothing of an exception in it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert isinstance(response.json["message"], str)
    assert set(response.json) <= {"message", "errors", "request_id"}
    text = response.get_data(as_text=True)
    assert not [leak for leak in LEAKS if leak in text], text


def test_scheduler_api_needs_a_key_with_its_scope(ops_client):
    assert ops_client.get("/scheduler/jobs").status_code == 401
    forbidden = ops_client.get("/scheduler/jobs", headers={"X-AUTH-API-KEY": REPORTING_KEY})
    assert forbidden.status_code == 403
    assert forbidden.json["missing_scope"] == "scheduler:admin"
    assert (
        ops_client.get("/scheduler/jobs", headers={"X-AUTH-API-KEY": AUTH_KEY}).status_code == 200
    )
    for method, path in [("post", "/jobs"), ("patch", "/jobs/x"), ("delete", "/jobs/x")]:
        assert getattr(ops_client, method)(f"/scheduler{path}", json={}).status_code == 401


def test_scheduler_api_adds_jobs_to_the_shared_store(api_app, ops_client):
    added = ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)

    assert added.status_code == 200
    assert {key: added.json[key] for key in HOURLY} == HOURLY
    assert list(stored_job_states(api_app)) == ["hourly"]
    assert [job["id"] for job in ops_client.get("/scheduler/jobs", headers=OPS).json] == ["hourly"]
    assert ops_client.get("/scheduler/jobs/hourly", headers=OPS).json["hours"] == 1


def test_scheduler_api_writes_the_store_even_where_jobs_do_not_run(scheduler_app_factory):
    app = scheduler_app_factory(SCHEDULER_API_ENABLED=True, SCHEDULER_ENABLED=False)
    client = app.test_client()

    response = client.post("/scheduler/jobs", json=HOURLY, headers={"X-AUTH-API-KEY": AUTH_KEY})

    assert response.status_code == 200
    assert list(stored_job_states(app)) == ["hourly"]


def test_scheduler_api_changes_pauses_resumes_and_deletes_jobs(api_app, ops_client):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)

    changed = ops_client.patch(
        "/scheduler/jobs/hourly",
        json={"trigger": "cron", "hour": 3, "func": PRUNE, "kwargs": {"days": 7}},
        headers=OPS,
    )
    assert changed.status_code == 200
    assert (changed.json["trigger"], changed.json["hour"], changed.json["func"]) == (
        "cron",
        "3",
        PRUNE,
    )
    assert changed.json["next_run_time"].endswith("T03:00:00+00:00")
    renamed = ops_client.patch("/scheduler/jobs/hourly", json={"name": "Prune"}, headers=OPS)
    assert (renamed.json["name"], renamed.json["hour"]) == ("Prune", "3")

    paused = ops_client.post("/scheduler/jobs/hourly/pause", headers=OPS)
    assert (paused.status_code, paused.json["next_run_time"]) == (200, None)
    resumed = ops_client.post("/scheduler/jobs/hourly/resume", headers=OPS)
    assert resumed.status_code == 200 and resumed.json["next_run_time"]

    assert ops_client.delete("/scheduler/jobs/hourly", headers=OPS).status_code == 204
    assert stored_job_states(api_app) == {}


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


REMOVE = object()  # a key to leave out of the definition


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": REMOVE}, "id"),
        ({"id": "x" * 192}, "id"),  # longer than the job store's column
        ({"id": "a\x00b"}, "id"),
        ({"id": "a/b"}, "id"),  # could not be named in a path
        ({"id": 7}, "id"),
        ({"func": REMOVE}, "func"),
        ({"func": "os:system"}, "func"),
        ({"func": ["os:system"]}, "func"),
        ({"args": [1]}, "args"),  # log_item_counts takes no arguments
        ({"args": "x"}, "args"),
        ({"kwargs": {"nope": 1}}, "kwargs"),
        ({"kwargs": [1]}, "kwargs"),
        ({"func": PRUNE, "kwargs": {"days": nested(40)}}, "kwargs"),
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"trigger": REMOVE, "hours": REMOVE}, "trigger"),
        ({"trigger": REMOVE}, "trigger"),  # required, as the hours say nothing alone
        ({"trigger": "weird"}, "trigger"),
        ({"trigger": {"type": "interval"}}, "trigger"),
        ({"hours": "abc"}, "hours"),
        ({"hours": -1}, "hours"),
        ({"hours": 0}, "trigger"),  # no interval at all
        ({"hours": 10**9}, "trigger"),
        ({"hours": 1e308}, "trigger"),
        ({"trigger": "cron", "hours": REMOVE, "hour": "99"}, "hour"),
        ({"trigger": "cron", "hours": REMOVE, "minute": "*/0"}, "minute"),
        ({"trigger": "cron", "hour": 3}, "hours"),  # an interval field on a cron trigger
        ({"trigger": "cron", "hours": REMOVE, "day": 31, "month": 2}, "trigger"),  # never fires
        ({"trigger": "date", "hours": REMOVE, "run_date": "2000-01-01T00:00:00"}, "run_date"),
        ({"trigger": "date", "hours": REMOVE, "run_date": "tomorrow"}, "run_date"),
        ({"end_date": "2001-01-01T00:00:00+00:00"}, "trigger"),  # ended: never fires
        ({"start_date": "0001-01-01T00:00:00"}, "start_date"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"misfire_grace_time": 0}, "misfire_grace_time"),
        ({"max_instances": "many"}, "max_instances"),
        ({"coalesce": [True]}, "coalesce"),
        ({"next_run_time": None}, "next_run_time"),  # pausing is /pause
        ({"replace_existing": True}, "replace_existing"),  # changing is PATCH
        ({"bogus": 1}, "bogus"),
    ],
)
def test_scheduler_api_refuses_a_bad_definition_naming_the_field(
    api_app, ops_client, change, field
):
    definition = {**HOURLY, **change}
    definition = {key: value for key, value in definition.items() if value is not REMOVE}

    response = ops_client.post("/scheduler/jobs", json=definition, headers=OPS)

    assert_error(response, 400)
    assert field in response.json["errors"], response.json
    assert stored_job_states(api_app) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "other"}, "id"),
        ({"hours": 2}, "hours"),  # a trigger is replaced whole: name it
        ({"trigger": "cron", "hours": 2}, "hours"),
        ({"trigger": "cron", "hour": "25"}, "hour"),
        ({"func": "os:system"}, "func"),
        ({"kwargs": {"nope": 1}}, "kwargs"),  # log_item_counts takes none
        ({"func": PRUNE, "args": [1, 2]}, "args"),
        ({"misfire_grace_time": "soon"}, "misfire_grace_time"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_scheduler_api_refuses_a_bad_change_and_keeps_the_job(api_app, ops_client, change, field):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)
    before = stored_job_states(api_app)

    response = ops_client.patch("/scheduler/jobs/hourly", json=change, headers=OPS)

    assert_error(response, 400)
    assert field in response.json["errors"], response.json
    assert stored_job_states(api_app) == before


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'"job"', b"null", b"", b"{", b'{"id": NaN}', b"[" * 100_000 + b"]" * 100_000],
)
@pytest.mark.parametrize(("method", "path"), [("post", "/jobs"), ("patch", "/jobs/hourly")])
def test_scheduler_api_wants_a_json_object(api_app, ops_client, body, method, path):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)

    response = getattr(ops_client, method)(
        f"/scheduler{path}", data=body, content_type="application/json", headers=OPS
    )

    assert_error(response, 400)
    assert error_body(response) == {"message": "Send the job as a JSON object."}


@pytest.mark.parametrize("job_id", ["nope", "x" * 300, "a%00b", "%F0%9F%92%A9"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("patch", ""), ("delete", ""), ("post", "/pause"), ("post", "/resume")],
)
def test_scheduler_api_answers_404_for_an_unknown_job(ops_client, job_id, method, suffix):
    response = getattr(ops_client, method)(
        f"/scheduler/jobs/{job_id}{suffix}", json={"name": "x"}, headers=OPS
    )

    assert_error(response, 404)
    assert "errors" not in response.json


def test_scheduler_api_answers_409_for_an_id_taken(api_app, ops_client):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)

    response = ops_client.post("/scheduler/jobs", json={**HOURLY, "hours": 2}, headers=OPS)

    assert_error(response, 409)
    assert error_body(response) == {"message": "Job hourly already exists."}
    assert ops_client.get("/scheduler/jobs/hourly", headers=OPS).json["hours"] == 1


def test_scheduler_api_answers_503_while_the_database_is_unreachable(make_app):
    app = make_app(
        SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:1/x", SCHEDULER_API_ENABLED=True
    )
    client = app.test_client()
    headers = {"X-AUTH-API-KEY": AUTH_KEY}
    try:
        answers = [
            client.get("/scheduler/jobs", headers=headers),
            client.post("/scheduler/jobs", json=HOURLY, headers=headers),
            client.get("/scheduler/jobs/hourly", headers=headers),
            client.patch("/scheduler/jobs/hourly", json={"name": "x"}, headers=headers),
            client.post("/scheduler/jobs/hourly/pause", headers=headers),
            client.delete("/scheduler/jobs/hourly", headers=headers),
        ]
    finally:
        app.extensions["scheduler"].stop()
    for response in answers:
        assert_error(response, 503)
        assert response.headers["Retry-After"]


# Hostile values for every field of a definition, and some fields that do not exist.
FIELDS = ["id", "func", "args", "kwargs", "name", "trigger", "misfire_grace_time", "coalesce"]
FIELDS += ["max_instances", "run_date", "start_date", "end_date", "timezone", "weeks", "days"]
FIELDS += ["hours", "minutes", "seconds", "year", "month", "day", "week", "day_of_week"]
FIELDS += ["hour", "minute", "second", "jitter", "next_run_time", "jobstore", "executor", "x"]


HOSTILE = [None, True, False, 0, -1, -3600, 1.5, 10**30, 1e308, -1e-308, 2**63]
HOSTILE += ["", " ", "x" * 100_000, "\x00", "a\x00b", "\ud800", "é" * 200, "../../etc/passwd"]
HOSTILE += ["*/0", "99", "-1", "mon-", "last", "5th fri", "1-", "weird", "cron", "date"]
HOSTILE += ["2000-01-01T00:00:00", "9999-12-31T23:59:59-12:00", "1970-01-01", "now"]
HOSTILE += ["os:system", PRUNE, [], [1], ["x" * 1000], {}, {"days": 1}, {"a": nested(40)}]
HOSTILE += [nested(40), {"type": "cron"}, {"": 1}, {"\x00": None}]


def assert_no_server_error(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert_error(response, response.status_code)


def test_scheduler_api_fuzz_never_answers_5xx_nor_leaks(api_app, ops_client):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)
    for number, (field, value) in enumerate(
        (field, value) for field in FIELDS for value in HOSTILE
    ):
        added = {**HOURLY, "id": f"fuzz-{number}", field: value}
        assert_no_server_error(ops_client.post("/scheduler/jobs", json=added, headers=OPS))
        for change in ({field: value}, {"trigger": "cron", field: value}):
            patched = ops_client.patch("/scheduler/jobs/hourly", json=change, headers=OPS)
            assert_no_server_error(patched)

    # Whatever was accepted can be read back, and is what the store holds.
    listed = ops_client.get("/scheduler/jobs", headers=OPS)
    assert listed.status_code == 200
    assert {job["id"] for job in listed.json} == set(stored_job_states(api_app))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(
    change=st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=3), json_values, min_size=1, max_size=4
    )
)
@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_scheduler_api_generated_definitions_never_answer_5xx(ops_client, change):
    assert_no_server_error(
        ops_client.post("/scheduler/jobs", json={**HOURLY, **change}, headers=OPS)
    )
    assert_no_server_error(ops_client.patch("/scheduler/jobs/hourly", json=change, headers=OPS))


@pytest.mark.parametrize("path", ["/scheduler/pause", "/scheduler/jobs/x/run", "/scheduler"])
def test_scheduler_api_has_no_routes_that_act_on_one_process(ops_client, path):
    response = ops_client.post(path, headers=OPS)

    assert response.status_code in {404, 405}


def job_store(app):
    return app.config["SCHEDULER_JOBSTORES"]["default"]


def store_overdue_job(app, job_id: str = "overdue") -> None:
    """A job whose run was due an hour ago, written straight into the shared store."""
    job = Job(
        app.extensions["scheduler"].flask_scheduler.scheduler,
        id=job_id,
        name=job_id,
        func="tests.scheduled_jobs:record",
        trigger=IntervalTrigger(minutes=10, timezone=UTC),
        executor="default",
        args=(),
        kwargs={},
        misfire_grace_time=None,
        coalesce=False,
        max_instances=1,
        next_run_time=datetime.now(UTC) - timedelta(hours=1),
    )
    job_store(app).add_job(job)


def store_rows(app) -> list:
    with app.app_context():
        table = db.metadata.tables["apscheduler_jobs"]
        return db.session.execute(select(table).order_by(table.c.id)).all()


def apscheduler_records(caplog) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if record.name.startswith("apscheduler")
    ]


def test_cli_list_shows_the_jobs_and_changes_nothing(scheduler_app_factory, caplog):
    app = scheduler_app_factory(JOBS=[every_second("tick")])
    store_overdue_job(app)
    store_overdue_job(app, "moved")
    with app.app_context():
        table = db.metadata.tables["apscheduler_jobs"]
        # As if the function's module were renamed after the job was stored.
        moved = table.c.id == "moved"
        state = db.session.execute(select(table.c.job_state).where(moved)).scalar_one()
        broken = state.replace(b"tests.scheduled_jobs:record", b"tests.scheduled_gone:record")
        db.session.execute(table.update().where(moved).values(job_state=broken))
        db.session.commit()
    before = store_rows(app)

    listed = app.test_cli_runner().invoke(args=["scheduler", "list"])

    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].startswith("overdue\tinterval[0:10:00]\tnext run: ")
    assert lines[1:] == [
        "moved\t(stored, but cannot be loaded: has its function moved?)",
        "tick\t(in JOBS, not yet in the store: the leader adds it)",
    ]
    assert runs(app) == []
    assert store_rows(app) == before
    assert apscheduler_records(caplog) == []
    assert not app.extensions["scheduler"].flask_scheduler.scheduler.running


def test_a_scheduler_that_does_not_lead_claims_nothing_as_it_stops(scheduler_app_factory):
    app = scheduler_app_factory()
    store_overdue_job(app)
    scheduler = app.extensions["scheduler"].flask_scheduler.scheduler

    # What a worker that never led does when it stops (Runtime.stop).
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)

    assert runs(app) == []


def test_cli_runs_one_job_now_quietly(scheduler_app_factory, caplog):
    app = scheduler_app_factory(
        JOBS=[every_second("tick"), every_second("broken", "tests.scheduled_jobs:fail")]
    )
    store_overdue_job(app)
    before = store_rows(app)
    cli = app.test_cli_runner()

    ran = cli.invoke(args=["scheduler", "run", "tick"])
    assert (ran.exit_code, ran.output) == (0, "tick: succeeded\n")
    failed = cli.invoke(args=["scheduler", "run", "broken"])
    assert (failed.exit_code, failed.output) == (1, "broken: failed\n")
    stored = cli.invoke(args=["scheduler", "run", "overdue"])
    assert (stored.exit_code, stored.output) == (0, "overdue: succeeded\n")
    unknown = cli.invoke(args=["scheduler", "run", "nope"])
    assert (unknown.exit_code, unknown.output) == (
        1,
        "Error: No job 'nope' in the store or in JOBS.\n",
    )

    assert [(run.job_id, run.status) for run in runs(app)] == [
        ("tick", JobRun.SUCCEEDED),
        ("broken", JobRun.FAILED),
        ("overdue", JobRun.SUCCEEDED),
    ]
    assert store_rows(app) == before  # running a job now does not reschedule it
    assert not [
        message
        for message in apscheduler_records(caplog)
        if message.startswith(("Scheduler", "Adding job", "Added job"))
    ]


def test_example_jobs_count_items_and_prune_old_runs(scheduler_app_factory, caplog):
    app = scheduler_app_factory()  # the JOBS of backend/settings.py
    with app.app_context():
        engine = db.engine
    long_ago = datetime.now(UTC) - timedelta(days=40)
    [(old_id, _)] = claim_runs(engine, "old", "log_item_counts", [long_ago])
    with app.app_context():
        old = db.session.get(JobRun, old_id)
        old.status, old.finished_at = JobRun.SUCCEEDED, long_ago
        db.session.commit()
    app.test_client().post(
        "/api/v1/users",
        json={"email": "o@example.com", "name": "O", "password": "12345678"},
        headers={"X-AUTH-API-KEY": AUTH_KEY},
    )
    cli = app.test_cli_runner()

    assert cli.invoke(args=["scheduler", "run", "log_item_counts"]).exit_code == 0
    assert cli.invoke(args=["scheduler", "run", "prune_job_runs"]).exit_code == 0

    assert "1 user(s), 0 item(s)." in caplog.messages
    assert any(message.startswith("Pruned 1 job run(s)") for message in caplog.messages)
    assert [run.job_id for run in runs(app)] == ["log_item_counts", "prune_job_runs"]


def test_jobs_resume_when_the_database_comes_back(make_app, tmp_path):
    database = tmp_path / "not-yet" / "scheduler.db"  # its folder is missing: unreachable
    app = make_app(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        SCHEDULER_LEASE_TTL=1.5,
        SCHEDULER_LEASE_INTERVAL=0.25,
        JOBS=[every_second("tick")],
    )
    runtime = app.extensions["scheduler"]
    runtime.start()
    try:
        wait_for(lambda: runtime.elector.database_down, timeout=5)
        database.parent.mkdir()
        with app.app_context():
            db.create_all()
        wait_for(lambda: len(runs(app)) >= 2, timeout=10)
    finally:
        runtime.stop()
    assert runtime.elector.database_down is False


def test_a_lease_too_short_for_its_renewals_is_refused(make_app):
    from backend.config_loading import ConfigError

    with pytest.raises(ConfigError, match="SCHEDULER_LEASE_TTL must be more than twice"):
        make_app(SCHEDULER_LEASE_TTL=10, SCHEDULER_LEASE_INTERVAL=5)


def test_scheduler_api_answers_409_for_a_job_that_no_longer_loads(api_app, ops_client):
    ops_client.post("/scheduler/jobs", json=HOURLY, headers=OPS)
    move_stored_function(api_app, b"backend.features.items.jobs", b"backend.features.itemz.jobs")

    assert_error(ops_client.get("/scheduler/jobs/hourly", headers=OPS), 409)
    assert_error(ops_client.post("/scheduler/jobs/hourly/pause", headers=OPS), 409)
    assert ops_client.delete("/scheduler/jobs/hourly", headers=OPS).status_code == 204
    assert stored_job_states(api_app) == {}
