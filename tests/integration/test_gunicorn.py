"""The app under real gunicorn: several worker processes, real sockets, a real log file."""

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from tests.integration.servers import (
    AUTH_HEADER,
    AUTH_KEY,
    TEST_DATABASE_URL,
    call,
)

pytestmark = pytest.mark.integration

# datetime | level | logger.func::line | method | path | query | status | message
LOG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
    r" \| (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)"
    r" \| (?P<where>[\w.<>]+::\d+)"
    r" \| (?P<method>-|[A-Z]+)"
    r" \| (?P<path>-|/[^|]*)"
    r" \| (?P<query>[^ |]+)"
    r" \| (?P<status>-|\d{3} [^|]+)"
    r" \| (?P<message>.*)$"
)
REQUEST_LOGGER = "backend.log_setup.log_request::"


def test_three_workers_store_and_delete_user_with_items(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    api = server.url + "/api/v1"

    user_body = {"email": "ada@example.com", "name": "Ada", "password": "analytical"}
    status, user, _ = call(api + "/users", "POST", user_body)
    assert status == 201, user
    item_body = {"title": "Engine", "description": "Analytical", "owner_id": user["id"]}
    status, item, _ = call(api + "/items", "POST", item_body)
    assert status == 201, item

    # Several reads, so more than one worker is likely to answer.
    for _ in range(6):
        assert call(f"{api}/users/{user['id']}")[:2] == (200, user)
        assert call(f"{api}/items/{item['id']}")[:2] == (200, item)
    status, page, _ = call(f"{api}/users/{user['id']}/items")
    assert status == 200 and page["items"] == [item]

    assert call(f"{api}/users/{user['id']}", "DELETE")[0] == 204
    status, body, _ = call(f"{api}/items/{item['id']}")
    assert status == 404, body
    assert call(f"{api}/users/{user['id']}")[0] == 404


def test_workers_share_rotating_log_file_without_losing_lines(database_url, start_gunicorn):
    server = start_gunicorn(
        workers=3,
        DATABASE_URL=database_url,
        FLASK_LOG_MAX_BYTES="20000",
        FLASK_LOG_BACKUP_COUNT="200",
    )
    count = 600
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(
            pool.map(lambda n: call(f"{server.url}/health?offset={n}", key=None)[0], range(count))
        )
    assert statuses == [200] * count
    server.stop()

    backups = sorted(server.log_file.parent.glob(server.log_file.name + ".[0-9]*"))
    assert backups, "the log never rotated"
    files = [server.log_file, *backups]
    lines = [line for path in files for line in path.read_text("utf-8").splitlines()]
    seen: dict[str, int] = {}
    for line in lines:
        if not line or line[0].isspace():
            continue  # A traceback, indented beneath the event it belongs to.
        fields = LOG_LINE.match(line)
        assert fields, f"not in the log format: {line!r}"
        if fields["path"] == "/health" and fields["where"].startswith(REQUEST_LOGGER):
            assert fields["status"] == "200 OK", line
            seen[fields["query"]] = seen.get(fields["query"], 0) + 1
    seen.pop("-", None)  # The probes that waited for gunicorn to answer.
    assert seen == {f"offset={n}": 1 for n in range(count)}


def test_production_without_secret_key_refuses_to_start(start_gunicorn):
    server = start_gunicorn(workers=2, wait=False, FLASK_SECRET_KEY=None)
    try:
        returncode = server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gunicorn still running with no SECRET_KEY:\n{server.stderr()}")

    stderr = server.stderr()
    assert returncode != 0
    assert any(line.startswith("Config error: SECRET_KEY") for line in stderr.splitlines()), stderr
    assert "Traceback" not in stderr


def test_unreachable_database_answers_503_json(start_gunicorn):
    # Bound but never listening: connecting is refused, and no one else can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        server = start_gunicorn(workers=2, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x")

        status, body, seconds = call(server.url + "/health", key=None)
        assert status == 503, body
        assert body["database"] == "unreachable"
        assert seconds < 5

        status, body, seconds = call(server.url + "/api/v1/users")
        assert status == 503, body
        assert body["message"]
        assert seconds < 5


class Forwarder:
    """A TCP proxy to stand in for the network between the app and its database.

    `stop` closes the listener and every forwarded connection, as a database
    restart or a network cut would; `start` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections = list(self._connections)
            self._connections.clear()
        _close(listener)
        for pair in connections:
            for sock in pair:
                _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # Stopped.
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._connections.add(pair)
            for source, target in (pair, pair[::-1]):
                threading.Thread(
                    target=self._pump, args=(source, target, pair), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, pair: tuple) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._connections.discard(pair)
        for sock in pair:
            _close(sock)


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # Wakes a thread blocked in accept or recv; close alone may not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def forwarder():
    database = make_url(TEST_DATABASE_URL)
    forwarder = Forwarder(database.host or "127.0.0.1", database.port or 5432)
    forwarder.start()
    yield forwarder
    forwarder.stop()


def users_batch(url: str, size: int) -> list[int]:
    """Statuses of `size` requests, six at a time so every worker gets some."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(lambda _: call(url)[0], range(size)))


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL")
def test_every_worker_reconnects_after_database_connection_is_cut(
    database_url, forwarder, start_gunicorn
):
    workers = 3
    proxied = make_url(database_url).set(host="127.0.0.1", port=forwarder.port)
    server = start_gunicorn(
        workers=workers,
        DATABASE_URL=proxied.render_as_string(hide_password=False),
        # Only request connections here, one request at a time in each worker, so that
        # the proxy counts one per worker.
        FLASK_SCHEDULER_ENABLED="false",
        GUNICORN_CMD_ARGS="--threads 1",
    )
    users = server.url + "/api/v1/users"

    # Each worker keeps one pooled connection, so open connections = workers that hold one.
    deadline = time.monotonic() + 10
    while forwarder.open_connections < workers and time.monotonic() < deadline:
        assert users_batch(users, 24) == [200] * 24
    assert forwarder.open_connections == workers

    forwarder.stop()
    for _ in range(12):
        status, body, seconds = call(users)
        assert status == 503, body
        assert body["message"]
        assert seconds < 5

    forwarder.start()
    # Recovered: 30 requests in a row succeed, and every worker holds a new connection.
    deadline = time.monotonic() + 5
    statuses = users_batch(users, 30)
    while time.monotonic() < deadline and (
        statuses != [200] * 30 or forwarder.open_connections < workers
    ):
        time.sleep(0.2)
        statuses = users_batch(users, 30)
    assert statuses == [200] * 30
    assert forwarder.open_connections == workers


def raw_request(port: int, request: bytes) -> tuple[int, str, dict]:
    """Sends bytes no HTTP client library would, and returns (status, content type, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["Content-Type"], json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /api/v1/users?q=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/9.9\r\nHost: a\r\n\r\n", 400),
    ],
    ids=["request line too long", "header too large", "bad HTTP version"],
)
def test_requests_gunicorn_rejects_get_json_errors(
    database_url, start_gunicorn, request_bytes, status
):
    server = start_gunicorn(workers=1, DATABASE_URL=database_url)

    answer_status, content_type, body = raw_request(server.port, request_bytes)

    assert answer_status == status
    assert content_type == "application/json"
    assert set(body) == {"message"}


def test_gunicorn_messages_use_app_log_format_without_query_secrets(database_url, start_gunicorn):
    server = start_gunicorn(workers=2, DATABASE_URL=database_url)
    secret = b"?password=hunter2&token=hunter2"
    rejected_by_gunicorn = [
        b"GET  /health" + secret + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # two spaces
        b"GET  /x'" + secret + b"' HTTP/1.1\r\nHost: a\r\n\r\n",  # and quotes
        b"GET /health" + secret + b"\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /health" + secret + b"&q=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /health" + secret + b" HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET /health" + secret + b" HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    ]
    # A chunked body that breaks off: the app reads it, and answers 400 itself.
    broken_body = (
        b"POST /api/v1/users"
        + secret
        + b" HTTP/1.1\r\nHost: a\r\n"
        + f"{AUTH_HEADER}: {AUTH_KEY}\r\nContent-Type: application/json\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n"
    )
    for request_bytes in [*rejected_by_gunicorn, broken_body]:
        status, content_type, _ = raw_request(server.port, request_bytes)
        assert status in (400, 414), request_bytes
        assert content_type == "application/json", request_bytes
    server.stop()

    stderr, log = server.stderr(), server.log_file.read_text()
    assert "hunter2" not in stderr
    assert "hunter2" not in log
    gunicorn_lines = []
    for line in stderr.splitlines():
        fields = LOG_LINE.match(line)
        assert fields, f"not in the log format: {line!r}"
        if fields["where"].startswith("gunicorn."):
            gunicorn_lines.append(line)
            assert line in log, "gunicorn's lines go to the log file too"
    messages = "\n".join(gunicorn_lines)
    for expected in ("Starting gunicorn", "Booting worker", "Shutting down: Master"):
        assert expected in messages
    assert messages.count("Invalid request from ip=") == len(rejected_by_gunicorn)
    assert "password=***&token=***" in messages


@pytest.fixture
def slow_app_server(database_url, start_gunicorn):
    """The app with a /slow route added (tests/integration/slow_app.py), timeout 3 s."""
    return start_gunicorn(
        workers=2,
        app="tests.integration.slow_app:create_app()",
        DATABASE_URL=database_url,
        GUNICORN_CMD_ARGS="--timeout 3",
    )


def test_requests_past_the_worker_timeout_are_answered_and_logged_once(slow_app_server):
    server = slow_app_server
    sleep = 6  # seconds, twice the timeout
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(call, f"{server.url}/slow?seconds={sleep}&offset=1", key=None)
        time.sleep(1)
        second = pool.submit(call, f"{server.url}/slow?seconds={sleep}&offset=2", key=None)
        answers = {"offset=1": first.result(), "offset=2": second.result()}
    # The aborted worker was replaced.
    assert call(server.url + "/health", key=None)[0] == 200
    # Until both requests would have finished: no line comes later.
    time.sleep(max(started + 1 + sleep + 0.5 - time.monotonic(), 0))
    server.stop()

    for query, (status, body, seconds) in answers.items():
        assert status in (503, 504), (query, status, body)
        assert set(body) == {"message"}
        assert seconds < sleep - 1
    # The first ran past the timeout. The second may have shared its worker, and been
    # stopped with it (503) before its own timeout.
    assert answers["offset=1"][0] == 504
    assert "Traceback" not in server.stderr()
    lines = {}
    for line in server.log_file.read_text().splitlines():
        fields = LOG_LINE.match(line)
        if fields and fields["path"] == "/slow":
            assert fields["query"] not in lines, f"a second line: {line}"
            lines[fields["query"]] = fields
    assert set(lines) == {"seconds=***&offset=1", "seconds=***&offset=2"}
    for query, fields in lines.items():
        status = answers[query.removeprefix("seconds=***&")][0]
        assert fields["status"].startswith(f"{status} "), fields.groupdict()
        elapsed_ms = float(fields["message"].split(" ms")[0])
        assert elapsed_ms >= (3000 if status == 504 else 1000)
