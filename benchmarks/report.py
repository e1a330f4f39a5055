"""From runs to the table, the goals and the JSON kept for comparison between commits."""

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.load import ENDPOINTS, Endpoint

TEMPLATE, BASELINE = "template", "baseline"
MAX_CPU_RATIO = 2.0
MAX_CACHE_HIT_RATIO = 1.3
MAX_P99_OVER_P50 = 3.0
MAX_COLD_START_S = 0.8
MAX_WORKER_RSS_MB = 80.0


@dataclass(frozen=True)
class Run:
    """One wrk run against one server, and the CPU the server spent on it.

    `requests` is what wrk completed. When wrk stops, each connection still has a
    request sent and unanswered, which the server serves anyway (its CPU is in
    `cpu_s`), so the server served `requests + connections`: the template's log
    confirms it (e.g. 488 completed at 64 connections, 552 logged). CPU per request
    divides by that, or slow endpoints at high concurrency would look twice as costly.
    """

    server: str
    endpoint: str
    connections: int
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_s: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "served": self.served,
            "requests_per_second": round(self.requests_per_second, 1),
            "cpu_ms_per_request": round(self.cpu_ms_per_request, 3),
        }

    @property
    def served(self) -> int:
        return self.requests + self.connections

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.served


@dataclass(frozen=True)
class Row:
    """Medians over the rounds of one endpoint, concurrency and server."""

    endpoint: str
    label: str
    connections: int
    server: str
    rounds: int
    rps_median: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int
    # Template rows: divided by the reference baseline row (see Endpoint.reference).
    cpu_ratio: float | None = None
    rps_ratio: float | None = None


def summarize(runs: list[Run]) -> list[Row]:
    rows: list[Row] = []
    for connections in sorted({run.connections for run in runs}):
        for endpoint in ENDPOINTS:
            for server in (TEMPLATE, BASELINE):
                mine = [
                    r
                    for r in runs
                    if (r.endpoint, r.connections, r.server) == (endpoint.name, connections, server)
                ]
                if mine:
                    rows.append(_row(endpoint, connections, server, mine))
    return [_with_ratios(row, rows) for row in rows]


def _row(endpoint: Endpoint, connections: int, server: str, runs: list[Run]) -> Row:
    rates = [run.requests_per_second for run in runs]
    return Row(
        endpoint=endpoint.name,
        label=endpoint.label,
        connections=connections,
        server=server,
        rounds=len(runs),
        rps_median=statistics.median(rates),
        rps_min=min(rates),
        rps_max=max(rates),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        cpu_ms_per_request=statistics.median(run.cpu_ms_per_request for run in runs),
        errors=sum(run.errors for run in runs),
    )


def _with_ratios(row: Row, rows: list[Row]) -> Row:
    if row.server != TEMPLATE:
        return row
    reference = _reference(row, rows)
    if reference is None:
        return row
    return Row(
        **{
            **asdict(row),
            "cpu_ratio": row.cpu_ms_per_request / reference.cpu_ms_per_request,
            "rps_ratio": row.rps_median / reference.rps_median,
        }
    )


def _reference(row: Row, rows: list[Row]) -> Row | None:
    name = next(e.reference for e in ENDPOINTS if e.name == row.endpoint)
    return next(
        (
            r
            for r in rows
            if (r.endpoint, r.connections, r.server) == (name, row.connections, BASELINE)
        ),
        None,
    )


def goals(rows: list[Row], cold_start: dict, rss_mb: dict[str, list[float]]) -> list[dict]:
    """The targets of the issue, measured here and never asserted by a test."""
    template = [row for row in rows if row.server == TEMPLATE]

    def ratios(endpoint: str) -> list[tuple[int, float]]:
        return [(r.connections, r.cpu_ratio or 0.0) for r in template if r.endpoint == endpoint]

    def ratio_goal(text: str, endpoint: str, limit: float) -> dict:
        found = ratios(endpoint)
        measured = ", ".join(f"{ratio:.2f}x at {c}" for c, ratio in found)
        return _goal(text, bool(found) and all(r <= limit for _c, r in found), measured)

    highest = max((row.connections for row in rows), default=0)
    spread = [(r.label, r.p99_ms / r.p50_ms) for r in template if r.connections == highest]
    worst = max(spread, key=lambda pair: pair[1], default=("-", 0.0))
    rss = rss_mb.get(TEMPLATE) or [0.0]
    return [
        ratio_goal("template CPU/request <= 2x baseline: user by id", "get_user", MAX_CPU_RATIO),
        ratio_goal("template CPU/request <= 2x baseline: list of 50", "list_users", MAX_CPU_RATIO),
        ratio_goal(
            "cache-hit item list CPU/request <= 1.3x baseline user by id",
            "items_hit",
            MAX_CACHE_HIT_RATIO,
        ),
        _goal(
            "template p99 <= 3x p50 at 64 connections (every endpoint)",
            worst[1] <= MAX_P99_OVER_P50 if highest >= 64 else None,
            f"worst {worst[1]:.1f}x ({worst[0]}) at {highest} connections",
        ),
        _goal(
            "create_app() cold start <= 0.8 s (import + create_app, fresh process)",
            cold_start["import_and_create_app_s"] <= MAX_COLD_START_S,
            f"{cold_start['import_and_create_app_s']:.2f} s",
        ),
        _goal(
            "template RSS per worker <= 80 MB after the run",
            max(rss) <= MAX_WORKER_RSS_MB,
            ", ".join(f"{size:.0f}" for size in rss) + " MiB",
        ),
    ]


def _goal(text: str, holds: bool | None, measured: str) -> dict:
    """holds is None when the run did not measure it (the smoke run has no 64 connections)."""
    return {"goal": text, "holds": holds, "measured": measured}


def _verdict(holds: bool | None) -> str:
    return {True: "holds", False: "MISSES", None: "not measured"}[holds]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    header = (
        f"{'endpoint':<27} {'conns':>5} {'server':<8} {'req/s median (min-max)':>24}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} {'CPU xbase':>9} {'req/s xbase':>11}"
    )
    lines = [header, "-" * len(header)]
    previous = None
    for row in rows:
        first = (row.endpoint, row.connections) != previous
        previous = (row.endpoint, row.connections)
        rate = f"{row.rps_median:.0f} ({row.rps_min:.0f}-{row.rps_max:.0f})"
        lines.append(
            f"{row.label if first else '':<27} {row.connections if first else '':>5}"
            f" {row.server:<8} {rate:>24} {row.p50_ms:>7.1f} {row.p99_ms:>7.1f}"
            f" {row.cpu_ms_per_request:>10.2f} {_ratio(row.cpu_ratio):>9}"
            f" {_ratio(row.rps_ratio):>11}" + (f"  {row.errors} errors" if row.errors else "")
        )
    return "\n".join(line.rstrip() for line in lines)


def layer_table(layers: list[dict[str, Any]]) -> list[str]:
    """benchmarks/layers.py's lines: where the CPU of a request goes, in one process."""
    if not layers:
        return []
    lines = [
        "where a request's CPU goes, in one process (no HTTP, no concurrency; ms per call):",
        f"{'layer':<40} {'template':>8} {'baseline':>8}",
    ]
    for layer in layers:
        base = "-" if layer["baseline_ms"] is None else f"{layer['baseline_ms']:.3f}"
        lines.append(
            f"{layer['layer']:<40} {layer['template_ms']:>8.3f} {base:>8}  {layer['note']}".rstrip()
        )
    return [*lines, ""]


def text_report(result: dict[str, Any]) -> str:
    """The whole report as printed: the table, then the costs outside requests, then goals."""
    settings, cold = result["settings"], result["cold_start"]
    rows = [Row(**row) for row in result["rows"]]
    parts = [
        f"{result['machine']['cores']} cores, {result['machine']['cpu']}; "
        f"{settings['users']} users, {settings['items']} items; {settings['rounds']} round(s) "
        f"of {settings['duration_s']} s per line, template and baseline interleaved",
        "",
        table(rows),
        "",
        *layer_table(result.get("layers") or []),
        f"create_app() cold start, median of {cold['runs']} fresh processes: "
        f"create_app {cold['create_app_s']:.2f} s, import + create_app "
        f"{cold['import_and_create_app_s']:.2f} s, whole process {cold['process_s']:.2f} s",
        f"password hash ({result['password_hash']['method']}): "
        f"{result['password_hash']['hash_ms']:.0f} ms each (median of 5, one core)",
        "RSS per worker after the run: "
        + "; ".join(
            f"{server} " + ", ".join(f"{size:.0f}" for size in sizes) + " MiB"
            for server, sizes in result["rss_mb"].items()
        ),
    ]
    tests = result.get("tests")
    if tests:
        parts.append(
            f"test suite: {tests['wall_s']:.0f} s wall ({tests['command']}; "
            f"exit {tests['exit_status']}; {tests['summary']})"
        )
    parts += ["", "goals (measured, not asserted):"]
    parts += [
        f"  [{_verdict(goal['holds'])}] {goal['goal']}: {goal['measured']}"
        for goal in result["goals"]
    ]
    return "\n".join(parts)
