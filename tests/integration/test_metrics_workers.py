"""GET /metrics under gunicorn: the requests of every worker, recycled and reloaded ones too."""

import json
import os
import signal
import time
import urllib.request

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.servers import call

pytestmark = pytest.mark.integration

WORKERS = 3
PROMETHEUS_KEY = "integration-prometheus-key"
ITEMS_CREATED = ("items_created_total", frozenset())


def scrape(server) -> dict[tuple, float]:
    """Every sample of GET /metrics: {(name, frozenset of labels): value}."""
    asked = urllib.request.Request(
        f"{server.url}/metrics", headers={"X-AUTH-API-KEY": PROMETHEUS_KEY}
    )
    with urllib.request.urlopen(asked, timeout=15) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def served(samples: dict, method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return samples.get(("http_request_duration_seconds_count", frozenset(labels.items())), 0)


def booted(server) -> int:
    return server.stderr().count("Booting worker with pid")


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def leave_stale_counts(directory) -> None:
    """What a previous run of the server would have left: 1000 items created."""
    stale = MmapedDict(str(directory / "counter_1.db"))
    key = mmap_key("items_created", "items_created_total", [], [], "Items created through the API.")
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


def test_counts_are_exact_across_workers_recycled_and_reloaded(
    database_url, start_gunicorn, tmp_path
):
    directory = tmp_path / "metrics"
    directory.mkdir()
    leave_stale_counts(directory)
    prometheus = {"prometheus": {"key": PROMETHEUS_KEY, "scopes": ["metrics:read"]}}
    server = start_gunicorn(
        WORKERS,
        DATABASE_URL=database_url,
        METRICS_DIR=str(directory),
        FLASK_API_CLIENTS=json.dumps(prometheus),
        # A worker is replaced after every 10 requests it serves.
        GUNICORN_CMD_ARGS="--max-requests 10 --max-requests-jitter 0",
    )
    master = server.process.pid
    start = scrape(server)
    assert start.get(ITEMS_CREATED) == 0  # not the 1000 left by a previous run
    assert (directory / f"counter_{master}.db").exists()  # what the master wrote is kept

    user = {"email": "owner@example.com", "name": "Owner", "password": "12345678"}
    status, owner, _ = call(f"{server.url}/api/v1/users", "POST", user)
    assert status == 201, owner
    for number in range(6):
        item = {"title": f"Item {number}", "owner_id": owner["id"]}
        assert call(f"{server.url}/api/v1/items", "POST", item)[0] == 201
    for _ in range(9):
        assert call(f"{server.url}/api/v1/items/999999")[0] == 404
    for _ in range(40):
        assert call(f"{server.url}/health", key=None)[0] == 200
    recycled = scrape(server)

    assert booted(server) >= WORKERS + 2  # workers were recycled
    assert served(recycled, "POST", "/api/v1/users", 201) == 1
    assert served(recycled, "POST", "/api/v1/items", 201) == 6
    assert served(recycled, "GET", "/api/v1/items/<id:item_id>", 404) == 9
    health = served(start, "GET", "/health", 200)
    assert served(recycled, "GET", "/health", 200) == health + 40
    assert served(recycled, "GET", "/metrics", 200) == 1  # the first scrape
    assert recycled[ITEMS_CREATED] == 6

    # A reload reads gunicorn.conf.py again and replaces every worker: nothing is lost.
    before_reload = booted(server)
    os.kill(master, signal.SIGHUP)
    wait_for(lambda: booted(server) >= before_reload + WORKERS)
    for _ in range(5):
        assert call(f"{server.url}/health", key=None)[0] == 200
    reloaded = scrape(server)

    assert served(reloaded, "GET", "/health", 200) == health + 45
    assert served(reloaded, "POST", "/api/v1/items", 201) == 6
    assert served(reloaded, "GET", "/metrics", 200) == 2

    # Each exited worker's figures were added into one file per type, however many exited.
    server.stop()
    owners = {path.name.split("_", 1)[1] for path in directory.glob("*.db")}
    assert owners == {f"{master}.db", "exited.db"}
