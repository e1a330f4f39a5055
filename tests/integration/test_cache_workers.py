"""The Redis cache under several gunicorn workers: fresh after writes, optional when down."""

import shutil
import signal
import subprocess
import time

import pytest

from tests.integration.servers import TEST_REDIS_URL, call, free_port, request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (TEST_REDIS_URL)"),
]


def item_reads(server, item_id: int, count: int = 30) -> list[tuple[int, str, str]]:
    """(status, X-Cache, title) of `count` reads on fresh connections, so all workers answer."""
    replies = [request(f"{server.url}/api/v1/items/{item_id}") for _ in range(count)]
    return [(r.status, r.headers.get("X-Cache"), r.body and r.body.get("title")) for r in replies]


def create_item(server, title: str) -> dict:
    status, owner, _ = call(
        server.url + "/api/v1/users",
        "POST",
        {"email": f"{title.lower()}@example.com", "name": "Owner", "password": "12345678"},
    )
    assert status == 201, owner
    status, item, _ = call(
        server.url + "/api/v1/items", "POST", {"title": title, "owner_id": owner["id"]}
    )
    assert status == 201, item
    return item


def test_a_write_is_seen_by_the_next_read_on_every_worker(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    item = create_item(server, "Old")
    reads = item_reads(server, item["id"])
    assert {cache for _, cache, _ in reads} == {"MISS", "HIT"}

    status, _, _ = call(f"{server.url}/api/v1/items/{item['id']}", "PATCH", {"title": "New"})
    assert status == 200

    assert all(
        (status, title) == (200, "New") for status, _, title in item_reads(server, item["id"])
    )


class RedisServer:
    """A Redis of the test's own, to freeze, stop and start again with its data."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory)]  # where `stop(keep_data=True)` saves
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("ping") != b"PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def cli(self, *command: str) -> bytes:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), *command], capture_output=True, check=False
        )
        return result.stdout.strip()

    def stop(self, keep_data: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            if keep_data:
                self.cli("shutdown", "save")
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def test_api_answers_from_the_database_while_redis_hangs_or_is_down(
    database_url, start_gunicorn, own_redis
):
    server = start_gunicorn(
        workers=3,
        DATABASE_URL=database_url,
        FLASK_CACHE_REDIS_URL=own_redis.url,
        FLASK_CACHE_RETRY_AFTER="1",
        FLASK_CACHE_DEFAULT_TIMEOUT="3",
    )
    item = create_item(server, "Before")
    path = f"{server.url}/api/v1/items/{item['id']}"
    item_reads(server, item["id"])

    # Hanging: the process is frozen, connections open but nothing answers.
    own_redis.process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    assert call(path, "PATCH", {"title": "During"})[0] == 200
    reads = item_reads(server, item["id"])
    assert time.monotonic() - started < 31 * 0.2  # a fraction of a second a request, at most
    assert all(read == (200, "MISS", "During") for read in reads)
    own_redis.process.send_signal(signal.SIGCONT)
    time.sleep(1.2)  # CACHE_RETRY_AFTER
    assert "HIT" in {cache for _, cache, _ in item_reads(server, item["id"])}

    # Down, then back with the entries it had: the write made meanwhile could not
    # invalidate them, so they may be served until they expire (3 s here), no longer.
    own_redis.stop(keep_data=True)
    assert call(path, "PATCH", {"title": "After"})[0] == 200
    assert all(read == (200, "MISS", "After") for read in item_reads(server, item["id"]))
    own_redis.start()
    time.sleep(3.5)
    reads = item_reads(server, item["id"])
    assert all((status, title) == (200, "After") for status, _, title in reads)
    assert "HIT" in {cache for _, cache, _ in reads}
