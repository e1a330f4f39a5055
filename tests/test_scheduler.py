"""Scheduled jobs: exactly once per scheduled time, recorded, led by one instance at a time."""

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import click
import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.scheduler import started_by_development_server
from backend.scheduler.config_jobs import sync_config_jobs
from backend.scheduler.leader import LeaseElector
from backend.scheduler.models import JobRun
from backend.scheduler.runs import adopt_orphans, as_utc, claim_runs
from tests import scheduled_jobs
from tests.conftest import AUTH_KEY, REPORTING_KEY, TEST_DATABASE_URL


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
    with app.app_context():
        table = db.metadata.tables["apscheduler_jobs"]
        # As if the function's module were renamed after the job was stored.
        state = db.session.execute(select(table.c.job_state)).scalar_one()
        broken = state.replace(b"tests.scheduled_jobs:record", b"tests.scheduled_gone:record")
        db.session.execute(table.update().values(job_state=broken))
        db.session.commit()
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


@pytest.fixture
def api_app(scheduler_app_factory):
    app = scheduler_app_factory(
        SCHEDULER_API_ENABLED=True,
        API_CLIENTS={
            "ops": {"key": "ops-key", "scopes": ["scheduler:admin"]},
            "reporting": {"key": REPORTING_KEY, "scopes": ["items:read"]},
        },
    )
    # What every process that is not the leader does: a paused scheduler on the store.
    app.extensions["scheduler"].flask_scheduler.scheduler.start(paused=True)
    return app


def test_scheduler_api_needs_a_key_with_its_scope(api_app):
    client = api_app.test_client()

    assert client.get("/scheduler/jobs").status_code == 401
    forbidden = client.get("/scheduler/jobs", headers={"X-AUTH-API-KEY": REPORTING_KEY})
    assert forbidden.status_code == 403
    assert forbidden.json["missing_scope"] == "scheduler:admin"
    assert client.get("/scheduler/jobs", headers={"X-AUTH-API-KEY": AUTH_KEY}).status_code == 200


def test_scheduler_api_adds_jobs_to_the_shared_store(api_app):
    client = api_app.test_client()
    ops = {"X-AUTH-API-KEY": "ops-key"}
    job = {"id": "hourly", "func": "backend.features.items.jobs:log_item_counts"}
    job |= {"trigger": "interval", "hours": 1}

    assert client.post("/scheduler/jobs", json=job, headers=ops).status_code == 200

    with api_app.app_context():
        stored = db.session.execute(select(db.metadata.tables["apscheduler_jobs"].c.id)).scalars()
        assert list(stored) == ["hourly"]
    assert [listed["id"] for listed in client.get("/scheduler/jobs", headers=ops).json] == [
        "hourly"
    ]


def test_scheduler_api_writes_the_store_even_where_jobs_do_not_run(scheduler_app_factory):
    app = scheduler_app_factory(SCHEDULER_API_ENABLED=True, SCHEDULER_ENABLED=False)
    client = app.test_client()
    job = {"id": "hourly", "func": "backend.features.items.jobs:log_item_counts"}
    job |= {"trigger": "interval", "hours": 1}

    assert (
        client.post("/scheduler/jobs", json=job, headers={"X-AUTH-API-KEY": AUTH_KEY}).status_code
        == 200
    )

    with app.app_context():
        stored = db.session.execute(select(db.metadata.tables["apscheduler_jobs"].c.id)).scalars()
        assert list(stored) == ["hourly"]


@pytest.mark.parametrize("func", ["os:system", ["a"], 7])
def test_scheduler_api_refuses_functions_not_named_in_config(api_app, func):
    client = api_app.test_client()
    job = {"id": "evil", "func": func, "args": ["true"], "trigger": "date"}

    response = client.post("/scheduler/jobs", json=job, headers={"X-AUTH-API-KEY": "ops-key"})

    assert response.status_code == 400
    assert "func" in response.json["errors"]


@pytest.mark.parametrize("path", ["/scheduler/pause", "/scheduler/jobs/x/run", "/scheduler"])
def test_scheduler_api_has_no_routes_that_act_on_one_process(api_app, path):
    response = api_app.test_client().post(path, headers={"X-AUTH-API-KEY": "ops-key"})

    assert response.status_code in {404, 405}


def test_cli_lists_jobs_and_runs_one_now(scheduler_app_factory):
    app = scheduler_app_factory(
        JOBS=[every_second("tick"), every_second("broken", "tests.scheduled_jobs:fail")]
    )
    cli = app.test_cli_runner()

    listed = cli.invoke(args=["scheduler", "list"])
    assert "tick\t(in JOBS, not yet in the store" in listed.output

    ran = cli.invoke(args=["scheduler", "run", "tick"])
    assert (ran.exit_code, ran.output) == (0, "tick: succeeded\n")
    failed = cli.invoke(args=["scheduler", "run", "broken"])
    assert (failed.exit_code, failed.output) == (1, "broken: failed\n")
    assert cli.invoke(args=["scheduler", "run", "nope"]).exit_code == 1

    assert "tick\tinterval[0:00:01]\tnext run: " in cli.invoke(args=["scheduler", "list"]).output
    assert [run.status for run in runs(app)] == [JobRun.SUCCEEDED, JobRun.FAILED]


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
