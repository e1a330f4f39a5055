"""The endpoints under load, and one wrk run against one of them.

Each endpoint is a request template that wrk_requests.lua fills in per request:
random ids and offsets, so the database is not asked for one row all the time, and
unique emails and query strings where every request must be new (creations, cache
misses).
"""

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk_requests.lua")
AUTH_HEADER = "X-AUTH-API-KEY"
PAGE = 50
PASSWORD = "benchmark-password"


@dataclass(frozen=True)
class Endpoint:
    """One line of the table.

    `reference` is the baseline endpoint the template's figures are divided by: the
    same endpoint, except for the cache hit, which the baseline cannot serve; it is
    held against the baseline's cheapest database read, one user by id.
    """

    name: str
    label: str
    method: str
    path: str
    reference: str
    body: str = ""
    expected_status: int = 200
    on_baseline: bool = True


ENDPOINTS = (
    Endpoint("get_user", "GET user by id", "GET", "/api/v1/users/{id}", "get_user"),
    Endpoint(
        "list_users",
        f"GET {PAGE} users + total",
        "GET",
        f"/api/v1/users?limit={PAGE}&offset={{offset}}",
        "list_users",
    ),
    Endpoint(
        "items_hit",
        f"GET {PAGE} items, cache hit",
        "GET",
        f"/api/v1/items?limit={PAGE}&offset=0",
        "get_user",
        on_baseline=False,
    ),
    Endpoint(
        "items_miss",
        f"GET {PAGE} items, cache miss",
        "GET",
        f"/api/v1/items?limit={PAGE}&offset=0&nonce={{unique}}",
        "items_miss",
    ),
    Endpoint(
        "create_user",
        "POST user (argon2id)",
        "POST",
        "/api/v1/users",
        "create_user",
        body=json.dumps(
            {"email": "bench-{unique}@example.com", "name": "Bench", "password": PASSWORD}
        ),
        expected_status=201,
    ),
    Endpoint("health", "GET /health", "GET", "/health", "health"),
)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or brew install wrk).")
    return path


def run_wrk(
    url: str, endpoint: Endpoint, connections: int, seconds: int, key: str, users: int
) -> WrkResult:
    """One wrk run; its errors count non-2xx/3xx answers, socket errors and timeouts.

    One wrk thread is plenty for these rates and leaves the cores to the servers.
    The timeout is long because creating users queues behind password hashing at high
    concurrency, and a request wrk gave up on would still cost the server its CPU.
    """
    command = [
        require_wrk(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "15s",
        "--script",
        str(LUA_SCRIPT),
        url,
        "--",
        endpoint.method,
        endpoint.path,
        endpoint.body,
        AUTH_HEADER,
        key,
        str(users),
        str(max(users - PAGE, 0)),
        secrets.token_hex(4),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                errors=data["socket_errors"] + data["status_errors"] + data["timeouts"],
            )
    raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{completed.stdout}{completed.stderr}")
