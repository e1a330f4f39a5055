"""GET /metrics: who may read it, and what it counts.

Metrics belong to the process, not to an app, so each test reads how much a figure
grew between two scrapes. Across gunicorn workers: tests/integration/test_metrics_workers.py.
"""

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.extensions import db
from backend.scheduler.models import JobRun
from backend.scheduler.runs import adopt_orphans, claim_runs
from tests.conftest import NO_SCOPES_KEY, TEST_DATABASE_URL, error_body

PROMETHEUS_KEY = "test-prometheus-key"
CLIENTS = {
    "prometheus": {"key": PROMETHEUS_KEY, "scopes": ["metrics:read"]},
    "no-scopes": {"key": NO_SCOPES_KEY, "scopes": []},
}
ITEM_ROUTE = "/api/v1/items/<id:item_id>"


@pytest.fixture
def app(make_app):
    return make_app(API_CLIENTS=CLIENTS)


def scrape(client) -> dict[tuple, float]:
    """Every sample of GET /metrics: {(name, frozenset of labels): value}."""
    response = client.get("/metrics", headers={"X-AUTH-API-KEY": PROMETHEUS_KEY})
    assert response.status_code == 200, response.data
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests(method: str, route: str, status: int) -> tuple:
    labels = {"method": method, "route": route, "status": str(status)}
    return ("http_request_duration_seconds_count", frozenset(labels.items()))


def grown(before: dict, after: dict, key: tuple) -> float:
    return after.get(key, 0) - before.get(key, 0)


def test_metrics_need_a_key_with_the_metrics_scope(client):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert error_body(missing)["message"].startswith("Missing API key")

    refused = client.get("/metrics", headers={"X-AUTH-API-KEY": NO_SCOPES_KEY})
    assert refused.status_code == 403
    assert error_body(refused) == {
        "message": "This API key lacks the scope metrics:read.",
        "missing_scope": "metrics:read",
    }

    served = client.get("/metrics", headers={"X-AUTH-API-KEY": PROMETHEUS_KEY})
    assert served.status_code == 200
    assert served.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE http_request_duration_seconds histogram" in served.text


def test_admins_may_read_metrics_and_other_people_may_not(client, make_member):
    _, admin = make_member("admin")
    _, user = make_member("user")

    assert client.get("/metrics", headers=admin).status_code == 200
    refused = client.get("/metrics", headers=user)
    assert refused.status_code == 403
    assert error_body(refused)["missing_scope"] == "metrics:read"


def test_requests_are_counted_by_method_route_template_and_status(client, auth_headers):
    before = scrape(client)
    client.get("/api/v1/items/5", headers=auth_headers)
    client.get("/api/v1/items/7", headers=auth_headers)
    client.get("/api/v1/items", headers=auth_headers)
    after = scrape(client)

    assert grown(before, after, requests("GET", ITEM_ROUTE, 404)) == 2
    assert grown(before, after, requests("GET", "/api/v1/items", 200)) == 1
    # The scrape before this one counts too: it was served by then.
    assert grown(before, after, requests("GET", "/metrics", 200)) == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert "/api/v1/items/5" not in routes


def test_any_path_or_method_the_client_makes_up_adds_no_label_value(client, auth_headers):
    before = scrape(client)
    client.get("/no/such/path/123")
    client.post("/health")
    client.open("/health", method="BREW")
    after = scrape(client)

    assert grown(before, after, requests("GET", "unmatched", 404)) == 1
    assert grown(before, after, requests("POST", "unmatched", 405)) == 1
    assert grown(before, after, requests("other", "unmatched", 405)) == 1
    values = {value for _, labels in after for _, value in labels}
    assert not values & {"/no/such/path/123", "BREW"}


def test_requests_refused_before_their_handler_are_counted(client, auth_headers):
    before = scrape(client)
    refused = client.get("/api/v1/items?title=%00", headers=auth_headers)  # backend/http_rules.py
    after = scrape(client)

    assert refused.status_code == 400
    assert grown(before, after, requests("GET", "/api/v1/items", 400)) == 1


def test_each_request_is_in_one_latency_bucket_and_in_the_sum(client):
    before = scrape(client)
    client.get("/health")
    after = scrape(client)

    labels = {"method": "GET", "route": "/health", "status": "200"}
    every = frozenset({**labels, "le": "+Inf"}.items())
    assert grown(before, after, ("http_request_duration_seconds_bucket", every)) == 1
    assert (
        grown(before, after, ("http_request_duration_seconds_sum", frozenset(labels.items()))) > 0
    )


def test_items_created_are_counted(client, auth_headers, make_item):
    created = ("items_created_total", frozenset())
    before = scrape(client)
    make_item()
    refused = client.post("/api/v1/items", json={"title": ""}, headers=auth_headers)
    after = scrape(client)

    assert refused.status_code == 400
    assert grown(before, after, created) == 1


@pytest.fixture
def jobs_app(make_app, tmp_path):
    """An app whose scheduler can run jobs: its database must be a file, not memory."""
    jobs = [
        {"id": "tick", "func": "tests.scheduled_jobs:record", "trigger": "interval", "hours": 1},
        {"id": "broken", "func": "tests.scheduled_jobs:fail", "trigger": "interval", "hours": 1},
    ]
    uri = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'jobs.db'}"
    app = make_app(SQLALCHEMY_DATABASE_URI=uri, JOBS=jobs, API_CLIENTS=CLIENTS)
    with app.app_context():
        db.create_all()
    return app


def job_runs(job: str, status: str) -> tuple:
    return ("scheduler_job_runs_total", frozenset({"job": job, "status": status}.items()))


def test_job_runs_are_counted_by_job_and_outcome(jobs_app):
    client, cli = jobs_app.test_client(), jobs_app.test_cli_runner()
    before = scrape(client)
    assert cli.invoke(args=["scheduler", "run", "tick"]).exit_code == 0
    assert cli.invoke(args=["scheduler", "run", "broken"]).exit_code == 1
    # A run left "running" by an instance that died, found by the next leader.
    with jobs_app.app_context():
        [(run_id, _)] = claim_runs(db.engine, "dead", "tick", [datetime(2030, 1, 1, tzinfo=UTC)])
        db.session.get(JobRun, run_id).status = JobRun.RUNNING
        db.session.commit()
        adopt_orphans(db.engine, "new", set())
    after = scrape(client)

    assert grown(before, after, job_runs("tick", "succeeded")) == 1
    assert grown(before, after, job_runs("broken", "failed")) == 1
    assert grown(before, after, job_runs("tick", "interrupted")) == 1


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/openmetrics-text; version=1.0.0", "application/openmetrics-text"),
        # prometheus_client cannot compare this version: the classic format, not a 500.
        ("application/openmetrics-text; version=abc", "text/plain"),
    ],
)
def test_metrics_come_in_the_format_asked_for(client, accept, content_type):
    headers = {"X-AUTH-API-KEY": PROMETHEUS_KEY, "Accept": accept}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == content_type


def test_metrics_can_be_turned_off(make_app):
    # A client keeping the scope does not stop the app from starting.
    client = make_app(METRICS_ENABLED=False, API_CLIENTS=CLIENTS).test_client()

    response = client.get("/metrics", headers={"X-AUTH-API-KEY": PROMETHEUS_KEY})
    assert response.status_code == 404
    assert response.is_json
