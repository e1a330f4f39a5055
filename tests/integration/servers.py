"""Real gunicorn processes for the integration tests, and a small HTTP client for them.

Each server runs `gunicorn "backend:create_app()"` from the project root, so
gunicorn.conf.py applies (preload_app and all), configured only through the
environment as in production. Servers use a SQLite file by default and the
PostgreSQL database in TEST_DATABASE_URL when it is set.
"""

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from backend import settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
AUTH_HEADER = "X-AUTH-API-KEY"
AUTH_KEY = "integration-" + secrets.token_hex(16)
SECRET_KEY = "integration-" + secrets.token_hex(16)
JWT_SECRET_KEY = "integration-" + secrets.token_hex(16)
# Variables that would leak the caller's configuration into the servers under test.
INHERITED_CONFIG = (
    "DATABASE_URL",
    "ENVIRONMENT",
    "WEB_CONCURRENCY",
    "GUNICORN_CMD_ARGS",
    "BACKEND_CONFIG_FILE",
    "METRICS_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Reply(NamedTuple):
    status: int
    body: Any  # the JSON body, or None
    seconds: float
    headers: dict[str, str]


def request(
    url: str,
    method: str = "GET",
    body: object = None,
    key: str | None = AUTH_KEY,
    token: str | None = None,
) -> Reply:
    """One request on a fresh connection, so that any worker may answer it; with an
    access token, that instead of the key."""
    parts = urlsplit(url)
    headers = {AUTH_HEADER: key} if key and not token else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        response_headers = dict(response.getheaders())
    finally:
        connection.close()
    is_json = response_headers.get("Content-Type", "").startswith("application/json")
    data = json.loads(raw) if raw and is_json else None
    return Reply(response.status, data, time.monotonic() - started, response_headers)


def call(url: str, method: str = "GET", body: object = None, key: str | None = AUTH_KEY):
    """(status, JSON body or None, seconds taken) of one request."""
    reply = request(url, method, body, key)
    return reply.status, reply.body, reply.seconds


APP = "backend:create_app()"


class Gunicorn:
    def __init__(self, tmp_path: Path, name: str, workers: int, env: dict, app: str = APP) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = tmp_path / f"{name}-logs" / "backend.log"
        self.stderr_path = tmp_path / f"{name}.stderr"
        env = base_env(tmp_path) | {"FLASK_LOG_FILE": str(self.log_file)} | env
        # None removes a variable, to start without it.
        self.env = {name: value for name, value in env.items() if value is not None}
        self.workers = workers
        self.app = app
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(self.workers), self.app]
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Its own process group, so the finalizer can reach orphaned workers too.
                start_new_session=True,
            )

    def wait_until_answering(self, timeout: float = 20) -> None:
        """Until /health answers at all: 503 counts, the database may be down on purpose."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                call(self.url + "/health", key=None)
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer within {timeout} s:\n{self.stderr()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def kill_leftovers(self) -> None:
        """Workers whose master died would still be in the group; gone once it is empty."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FLASK_") and name not in INHERITED_CONFIG
    }
    env.update(
        {
            # No backend/config.py a developer may have: only these variables count.
            "BACKEND_CONFIG_FILE": str(tmp_path / "no-config.py"),
            "FLASK_ENVIRONMENT": "production",
            "FLASK_SECRET_KEY": SECRET_KEY,
            "FLASK_AUTH_KEY": AUTH_KEY,
            "FLASK_JWT_SECRET_KEY": JWT_SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
            # Far above what a test sends; test_rate_limits_workers.py sets tight ones.
            "FLASK_RATE_LIMITS": json.dumps(
                {name: "100000 per minute" for name in settings.RATE_LIMITS}
            ),
        }
    )
    # Production needs a cache every worker shares: Redis when there is one to test with.
    if TEST_REDIS_URL:
        env["FLASK_CACHE_TYPE"] = "RedisCache"
        env["FLASK_CACHE_REDIS_URL"] = TEST_REDIS_URL
        env["FLASK_CACHE_KEY_PREFIX"] = f"integration-{secrets.token_hex(8)}:"
    else:
        env["FLASK_CACHE_TYPE"] = "NullCache"
    return env
