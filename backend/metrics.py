"""Prometheus metrics at GET /metrics: every request by method, route and status, and the
counters features define (README: "Metrics").

Metrics are prometheus_client objects defined once per process, next to the code that
counts (backend/features/items/metrics.py, backend/scheduler/runs.py). Under gunicorn
each worker writes them to files in PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py
before the app is imported) and a scrape adds up every worker's files, so whichever
worker answers, it reports the whole server. Without it (flask run, tests) a scrape
reports the one process.
"""

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, current_app, g, request, request_finished, request_started
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.mmap_dict import MmapedDict

from backend.auth import declare_scope, requires_scope
from backend.config_loading import ConfigError

logger = logging.getLogger(__name__)

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

# Its _count is the number of requests answered. Labels take few values, whatever clients
# send: the route's template, never the path; any other method is "other".
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, from before the first before_request hook to after the last "
    "after_request hook, by method, route template and status.",
    ["method", "route", "status"],
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a request that matched none (404, 405), where the path is the client's.
UNMATCHED = "unmatched"

# prometheus_client's file types whose values add up across processes.
ADDITIVE_TYPES = ("counter", "histogram", "summary")


def init_metrics(app: Flask) -> None:
    # Declared even when off, so a client configured with the scope still starts.
    declare_scope(app, app.config["METRICS_SCOPE"])
    if not app.config["METRICS_ENABLED"]:
        return
    app.extensions["metrics_registry"] = _registry()
    # Flask's request signals, not before/after_request hooks: the time covers every hook,
    # and a request refused by one (400, 426, 429) is counted, wherever this line sits.
    request_started.connect(_start_timer, app)
    request_finished.connect(_observe, app)
    app.add_url_rule("/metrics", "metrics", serve_metrics)


def _registry() -> CollectorRegistry:
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if not directory:
        return REGISTRY
    if not os.path.isdir(directory):
        raise ConfigError(f"Config error: {MULTIPROCESS_DIRECTORY}={directory} is not a directory.")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, directory)
    return registry


def _start_timer(_app: Flask, **_extra: object) -> None:
    g.metrics_started = time.perf_counter()


def _observe(_app: Flask, response: Response, **_extra: object) -> None:
    started = g.pop("metrics_started", None)
    if started is None:
        return
    method, rule = request.method, request.url_rule
    REQUEST_DURATION.labels(
        method if method in METHODS else "other",
        rule.rule if rule is not None else UNMATCHED,
        response.status_code,
    ).observe(time.perf_counter() - started)


def serve_metrics() -> Response:
    """Every worker's figures, in the format the scraper asks for (Prometheus or OpenMetrics)."""
    requires_scope(current_app.config["METRICS_SCOPE"]).authenticate()
    try:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    except TypeError:  # a version it cannot compare, "version=abc": the classic format
        encode, content_type = choose_encoder("")
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if directory is None:
        body = encode(current_app.extensions["metrics_registry"])
    else:
        with _locked(directory, fcntl.LOCK_SH):  # no merge of an exited worker half-read
            body = encode(current_app.extensions["metrics_registry"])
    return Response(body, content_type=content_type)


def worker_exited(pid: int) -> None:
    """Called by gunicorn's master when a worker has exited (gunicorn.conf.py, child_exit).

    prometheus_client keeps an exited worker's counters and histograms in files of its
    own for good: with workers recycled, the files (and the time a scrape takes to read
    them) would grow without bound. Its values are added into one file per type instead,
    which a scrape reads like any other, so every total stays exact.
    """
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if not directory:
        return
    try:
        multiprocess.mark_process_dead(pid, directory)  # its live gauges, if any
        with _locked(directory, fcntl.LOCK_EX):
            for kind in ADDITIVE_TYPES:
                exited = os.path.join(directory, f"{kind}_{pid}.db")
                if os.path.exists(exited):
                    _add_into(os.path.join(directory, f"{kind}_exited.db"), exited)
                    os.remove(exited)
    except Exception:
        # An error in gunicorn's master would stop the server. The worker's files stay,
        # and are still counted.
        logger.exception("Metrics: could not add up the files of exited worker %s", pid)


def _add_into(total_file: str, exited_file: str) -> None:
    """Adds into a copy, then puts it in place at once: a failure changes nothing."""
    draft = f"{total_file}.draft"  # not *.db: no scrape reads it
    if os.path.exists(total_file):
        shutil.copyfile(total_file, draft)
    elif os.path.exists(draft):
        os.remove(draft)  # left by a failure
    total = MmapedDict(draft)
    try:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(exited_file):
            total.write_value(key, total.read_value(key)[0] + value, timestamp)
    finally:
        total.close()
    os.replace(draft, total_file)


@contextmanager
def _locked(directory: str, operation: int) -> Iterator[None]:
    # Opened each time: a file opened before gunicorn forks would share one lock.
    with open(os.path.join(directory, "merge.lock"), "a") as lock:
        fcntl.flock(lock, operation)
        yield
