"""The benchmark: the template and a bare Flask baseline under the same load, side by side.

    .venv/bin/python -m benchmarks            full run, a few minutes
    .venv/bin/python -m benchmarks --smoke    about 20 s, for CI: proves it still runs

Steps: a fresh PostgreSQL database (`flask db upgrade`, then bulk rows); create_app()
timed in fresh processes; both servers started under gunicorn with 2 workers; one
request per endpoint to check the answers; a warm-up; then rounds in which every
endpoint and concurrency runs on the template, then at once on the baseline, so
that both see the same machine. Everything started is stopped, and the database
and the cache keys removed, however the run ends. See benchmarks/README.md.
"""

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import psycopg2
import redis

from backend import settings
from benchmarks import database, report, startup
from benchmarks.load import AUTH_HEADER, ENDPOINTS, Endpoint, WrkResult, require_wrk, run_wrk
from benchmarks.report import BASELINE, TEMPLATE, Run
from benchmarks.servers import Server, wait_until_idle

HERE = Path(__file__).resolve().parent
ROOT = database.ROOT
WORKERS = 2
BASELINE_APP = "benchmarks.baseline_app:app"
# Variables of the caller's shell that would change what is measured.
INHERITED_CONFIG = ("DATABASE_URL", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS", "BACKEND_CONFIG_FILE")

FULL = {
    "users": 10_000,
    "items": 100_000,
    "rounds": 3,
    "duration": 3,
    "connections": "8,64",
    "warmup": 1,
    "cold_starts": 5,
    "layer_calls": 2000,
    "output": HERE / "results" / "latest.json",
}
# CI's smoke run: every step once, on a tiny database, so the benchmark cannot rot.
SMOKE = {
    **FULL,
    "users": 200,
    "items": 2_000,
    "rounds": 1,
    "duration": 1,
    "connections": "8",
    "warmup": 0,
    "cold_starts": 1,
    "layer_calls": 20,
    "output": HERE / "results" / "smoke.json",
}


@dataclass(frozen=True)
class Options:
    users: int
    items: int
    rounds: int
    duration: int
    connections: list[int]
    warmup: int
    cold_starts: int
    layer_calls: int
    output: Path
    with_tests: bool
    postgres_url: str
    redis_url: str


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="tiny seed, 1 round of 1 s, 8 conns")
    parser.add_argument("--users", type=int, help="users seeded (10000)")
    parser.add_argument("--items", type=int, help="items seeded (100000)")
    parser.add_argument("--rounds", type=int, help="measured rounds (3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (3)")
    parser.add_argument("--connections", help="comma-separated concurrency levels (8,64)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per endpoint (1)")
    parser.add_argument("--cold-starts", type=int, help="fresh processes timed (5)")
    parser.add_argument("--layer-calls", type=int, help="calls per batch in the layer list (2000)")
    parser.add_argument("--output", type=Path, help="JSON file (benchmarks/results/latest.json)")
    parser.add_argument(
        "--with-tests", action="store_true", help="also time the test suite (~1.5 min)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a server where the benchmark may create and drop a database",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the template's cache; only keys under a prefix of its own are touched",
    )
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    value = {key: getattr(args, key) for key in preset if getattr(args, key) is not None}
    merged = {**preset, **value}
    return Options(
        users=merged["users"],
        items=merged["items"],
        rounds=merged["rounds"],
        duration=merged["duration"],
        connections=[int(part) for part in str(merged["connections"]).split(",")],
        warmup=merged["warmup"],
        cold_starts=merged["cold_starts"],
        layer_calls=merged["layer_calls"],
        output=merged["output"],
        with_tests=args.with_tests,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
    )


def clean_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FLASK_") and name not in INHERITED_CONFIG
    }


def template_environment(
    workdir: Path, database_url: str, redis_url: str, key: str, prefix: str
) -> dict[str, str]:
    """Production, configured only by the environment, as README's "Running in production"."""
    return clean_environment() | {
        # No backend/config.py a developer may have: only these variables count.
        "BACKEND_CONFIG_FILE": str(workdir / "no-config.py"),
        "FLASK_ENVIRONMENT": "production",
        "FLASK_SECRET_KEY": secrets.token_urlsafe(32),
        "FLASK_AUTH_KEY": key,
        "FLASK_JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "FLASK_LOG_FILE": str(workdir / "logs" / "backend.log"),
        "FLASK_CACHE_TYPE": "RedisCache",
        "FLASK_CACHE_REDIS_URL": redis_url,
        "FLASK_CACHE_KEY_PREFIX": prefix,
        # Counted in Redis at every request as in production, with limits that wrk's one
        # key stays under: the price of counting, not the cost of refusing.
        "FLASK_RATE_LIMITS": json.dumps(
            dict.fromkeys(settings.RATE_LIMITS, "100000000 per minute")
        ),
        "WEB_CONCURRENCY": str(WORKERS),
    }


def make_servers(workdir: Path, template_env: dict[str, str], baseline_env: dict) -> list[Server]:
    gunicorn = str(database.BIN / "gunicorn")
    workers = ["--workers", str(WORKERS)]
    return [
        Server(
            TEMPLATE,
            [gunicorn, "--config", "gunicorn.conf.py", *workers, "backend:create_app()"],
            ROOT,
            template_env,
            workdir,
        ),
        Server(
            BASELINE,
            [gunicorn, "--config", str(HERE / "baseline_gunicorn.py"), *workers, BASELINE_APP],
            ROOT,
            baseline_env,
            workdir,
        ),
    ]


def check_endpoints(servers: list[Server], key: str) -> None:
    """One request per endpoint before any load: a broken endpoint fails here, clearly."""
    for server in servers:
        for endpoint in ENDPOINTS:
            if server.name == BASELINE and not endpoint.on_baseline:
                continue
            status, headers = _request(server, endpoint, key)
            if status != endpoint.expected_status:
                raise RuntimeError(
                    f"{server.name} {endpoint.method} {endpoint.path}: {status}, "
                    f"expected {endpoint.expected_status}\n{server.output()}"
                )
            if endpoint.name == "items_hit":
                _status, headers = _request(server, endpoint, key)
                if headers.get("X-Cache") != "HIT":
                    raise RuntimeError("The template's item list is not cached: is Redis up?")


def _request(server: Server, endpoint: Endpoint, key: str) -> tuple[int, dict[str, str]]:
    unique = secrets.token_hex(6)

    def fill(text: str) -> str:
        return text.replace("{id}", "1").replace("{offset}", "0").replace("{unique}", unique)

    headers = {AUTH_HEADER: key, "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = fill(endpoint.body) or None
        connection.request(endpoint.method, fill(endpoint.path), body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


@dataclass(frozen=True)
class Load:
    """Drives the servers with wrk, as the options say."""

    servers: list[Server]
    options: Options
    key: str

    def wrk(self, server: Server, endpoint: Endpoint, connections: int, seconds: int) -> WrkResult:
        return run_wrk(server.url, endpoint, connections, seconds, self.key, self.options.users)

    def plan(self) -> Iterator[tuple[Endpoint, Server]]:
        """Every endpoint on the template, then the same on the baseline: A B A B ..."""
        for endpoint in ENDPOINTS:
            for server in self.servers:
                if server.name == TEMPLATE or endpoint.on_baseline:
                    yield endpoint, server

    def measure(self, server: Server, endpoint: Endpoint, connections: int, number: int) -> Run:
        """One wrk run, with the server's CPU from idle before it to idle after it.

        The previous run ended with the servers idle (the first one follows the check).
        """
        before = server.cpu_seconds()
        result = self.wrk(server, endpoint, connections, self.options.duration)
        wait_until_idle(self.servers)
        return Run(
            server=server.name,
            endpoint=endpoint.name,
            connections=connections,
            round=number,
            requests=result.requests,
            seconds=result.seconds,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            errors=result.errors,
            cpu_s=server.cpu_seconds() - before,
        )

    def run(self) -> list[Run]:
        """A warm-up at the highest concurrency, then the measured rounds."""
        rounds = self.options.rounds
        if self.options.warmup:
            progress(f"warm-up: {self.options.warmup} s per endpoint and server")
            for endpoint, server in self.plan():
                self.wrk(server, endpoint, max(self.options.connections), self.options.warmup)
        runs = []
        wait_until_idle(self.servers)
        for number in range(1, rounds + 1):
            for connections in self.options.connections:
                for endpoint, server in self.plan():
                    run = self.measure(server, endpoint, connections, number)
                    runs.append(run)
                    progress(
                        f"round {number}/{rounds} {connections:>3} conns  {endpoint.label:<27} "
                        f"{server.name:<8} {run.requests_per_second:>6.0f} req/s "
                        f"{run.cpu_ms_per_request:6.2f} CPU ms/req"
                        + (f"  {run.errors} ERRORS" if run.errors else "")
                    )
        return runs


STARTED = time.monotonic()


def price_layers(env: dict[str, str], calls: int, users: int) -> list[dict]:
    """benchmarks/layers.py in a process of its own, in the template's environment."""
    command = [sys.executable, "-m", "benchmarks.layers", str(calls), str(users)]
    return json.loads(database.run_in_project(command, env).splitlines()[-1])


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def machine(postgres_url: str) -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    connection = psycopg2.connect(postgres_url, connect_timeout=5)
    try:
        postgres = connection.server_version
    finally:
        connection.close()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        command = ["git", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return ""


def delete_cache_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def stop_on_sigterm() -> None:
    """A CI timeout sends SIGTERM: leave through the same clean-up as Ctrl-C."""

    def leave(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def benchmark(options: Options, workdir: Path, cleanup: contextlib.ExitStack) -> dict:
    """Everything that needs clean-up registers it on `cleanup` as soon as it exists."""
    token = secrets.token_hex(4)
    database_name, prefix, key = f"bench_{token}", f"bench-{token}:", secrets.token_urlsafe(32)

    progress(
        f"database {database_name}: flask db upgrade, {options.users} users, {options.items} items"
    )
    database_url = database.create_database(options.postgres_url, database_name)
    cleanup.callback(database.drop_database, options.postgres_url, database_name)
    cleanup.callback(delete_cache_keys, options.redis_url, prefix)
    template_env = template_environment(workdir, database_url, options.redis_url, key, prefix)
    database.migrate(template_env)
    password_hash = database.seed(template_env, options.users, options.items)

    progress(f"create_app() cold start: {options.cold_starts} fresh process(es)")
    cold_start = startup.cold_start(template_env, options.cold_starts)

    baseline_env = clean_environment() | {
        "BASELINE_DATABASE_URL": database_url,
        "BASELINE_ARGON2": ",".join(map(str, password_hash["argon2"])),
    }
    progress(f"layers: each piece of a request, {options.layer_calls} calls, in one process")
    layers = price_layers(template_env, options.layer_calls, options.users)
    progress("starting the template and the baseline under gunicorn")
    servers = make_servers(workdir, template_env, baseline_env)
    for server in servers:
        cleanup.callback(server.stop)
        server.start()
    for server in servers:
        server.wait_until_answering()
    progress("servers answer; checking every endpoint once")
    check_endpoints(servers, key)
    runs = Load(servers, options, key).run()
    rss_mb = {server.name: server.worker_rss_mb() for server in servers}
    for server in servers:
        server.stop()

    tests = None
    if options.with_tests:
        progress("test suite: " + " ".join(startup.TEST_COMMAND[1:]))
        tests = startup.time_test_suite(dict(os.environ))

    rows = report.summarize(runs)
    return {
        "machine": machine(options.postgres_url),
        "settings": {
            "users": options.users,
            "items": options.items,
            "rounds": options.rounds,
            "duration_s": options.duration,
            "connections": options.connections,
            "workers": WORKERS,
        },
        "rows": [asdict(row) for row in rows],
        "runs": [run.as_json() for run in runs],
        "cold_start": cold_start,
        "layers": layers,
        "password_hash": password_hash,
        "rss_mb": rss_mb,
        "tests": tests,
        "goals": report.goals(rows, cold_start, rss_mb),
    }


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    require_wrk()
    stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="backend-bench-"))
    try:
        with contextlib.ExitStack() as cleanup:
            result = benchmark(options, workdir, cleanup)
    except Exception:
        progress(f"benchmark failed; the servers' output and logs are kept in {workdir}")
        raise
    except BaseException:  # Ctrl-C or SIGTERM: nothing to investigate
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(workdir)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(report.text_report(result))
    print(f"\nwritten to {options.output}")
    errors = sum(row["errors"] for row in result["rows"])
    if errors:
        progress(f"{errors} request(s) failed: see the errors column.")
    return 1 if errors else 0
