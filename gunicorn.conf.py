"""Production defaults for `gunicorn "backend:create_app()"`.

Each setting can be overridden on the command line or in GUNICORN_CMD_ARGS.
"""

import atexit
import contextlib
import ctypes
import gc
import json
import logging
import multiprocessing
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from functools import partial
from http import HTTPStatus
from typing import Any, NamedTuple

from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import RequestTimeout

# Set by the operator, read only here: exported as PROMETHEUS_MULTIPROC_DIR itself, it
# would also send every `flask` command's figures to the server's directory.
METRICS_DIR = "METRICS_DIR"
METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_directory() -> None:
    """Where every worker writes its Prometheus metrics, for /metrics to add up
    (backend/metrics.py): METRICS_DIR emptied, or else a new directory.

    Done here, before the app is imported below: prometheus_client chooses its
    multiprocess mode when first imported, and with preload_app the master writes its
    figures there as the app loads (emptying it in on_starting would delete them).
    """
    if "prometheus_client" in sys.modules:
        return  # a reload (HUP) reads this file again: the workers keep writing there
    directory = os.environ.get(METRICS_DIR)
    if directory and "GUNICORN_PID" not in os.environ:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
        os.environ[METRICS_DIRECTORY] = directory
    else:
        # None given, or this master was started by another (USR2) still writing there.
        os.environ[METRICS_DIRECTORY] = tempfile.mkdtemp(prefix="backend-metrics-")
        # Also when the app fails to load; workers inherit the handler, and leave it.
        atexit.register(remove_directory, os.environ[METRICS_DIRECTORY], os.getpid())


def remove_directory(directory: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


prepare_metrics_directory()

from backend.log_setup import redact_query  # noqa: E402  (after the metrics directory)

# WEB_CONCURRENCY is the variable most hosting platforms set.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))

# The app is built once in the master: a configuration error stops gunicorn with
# its one-line message instead of every worker failing in turn, and workers share
# the loaded code. create_app opens no connection, so nothing is shared by the fork.
preload_app = True

# Clients may connect directly, with no buffering proxy in front: a slow one holds a
# thread (worker_class, at the end of this file), not a whole worker. Fewer slow
# clients than workers x threads leave the others unaffected; with that many, a new
# request waits until a slow client's deadline frees a thread. Each thread may hold a
# database connection: keep workers x threads under the database's limit.
threads = 4
# A client has timeout / 2 to send its request line and headers, and as long again for
# its body, or it gets a 408. A request still running after `timeout` gets a 504, and
# its worker is replaced.
timeout = 30
graceful_timeout = 30
# One request per connection, as with sync workers: a kept-alive connection would
# bring its next request to the same worker, to wait there behind slow clients.
keepalive = 0

# Restart each worker now and then, so a slow leak cannot grow without bound. Rarely:
# a worker's exit costs it about 0.3 s of CPU and stalls the requests queued on it.
max_requests = 50_000
max_requests_jitter = 5_000

# The app logs every request itself (backend/log_setup.py).
accesslog = None

# A password hash takes ARGON2_MEMORY_COST (19 MiB) for a moment. glibc gives each
# thread an arena of its own and keeps a block that big in it once freed: a worker
# whose 4 threads had hashed held 78 MiB more for good. With one arena the block is
# reused, and trimmed; hashing costs the same (measured: 4 threads hashing, 91 MiB RSS
# before, 14 after; 19 ms a hash either way). Handing the blocks back to the system
# instead (a fixed mmap threshold) would cost 11 ms more per hash in page faults.
with contextlib.suppress(OSError, AttributeError):
    ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX


def pre_fork(server: object, worker: object) -> None:
    """What the master loaded leaves the garbage collector's sight, in every worker:
    collections no longer copy its shared pages, and an exiting worker does not walk it."""
    gc.freeze()


def post_worker_init(worker: object) -> None:
    """Each worker takes part in running scheduled jobs, once it is its own process."""
    from backend.scheduler import start_scheduler

    if worker.wsgi.config["SCHEDULER_ENABLED"]:
        start_scheduler(worker.wsgi)


def worker_exit(server: object, worker: object) -> None:
    """A stopping worker finishes its job runs and hands the jobs over."""
    from backend.scheduler import stop_scheduler

    # gunicorn also calls this in the master for a worker that vanished; only the
    # worker itself has a scheduler to stop.
    if worker.pid == os.getpid() and getattr(worker, "wsgi", None) is not None:
        stop_scheduler(worker.wsgi)


def child_exit(server: object, worker: object) -> None:
    """An exited worker's metrics join the totals of exited workers, in the master."""
    from backend.metrics import worker_exited

    worker_exited(worker.pid)


# gunicorn's control socket has one path per user, so a second instance on the same
# host (a blue/green deploy, a test server) would remove the first one's socket.
control_socket_disable = True


def write_json_error(sock: object, status_int: int, reason: str, mesg: str) -> None:
    """Answer in the app's JSON error shape where gunicorn answers by itself.

    gunicorn rejects some requests before the app sees them (a request line over
    4094 bytes: 414, headers too large: 431, malformed HTTP: 400), with an HTML page
    of its own. This writes {"message": ...} instead, as the OpenAPI document says.
    """
    body = json.dumps({"message": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn's workers call util.write_error for these answers; it has no setting for them.
util.write_error = write_json_error


class AppFormatLogger(glogging.Logger):
    """gunicorn's own messages go where the app's go, in its format, queries redacted.

    create_app puts the console and log file handlers on the root logger, in the master
    (preload_app); gunicorn's loggers hand their records to it, instead of printing
    them in a format of their own (so --error-logfile and --access-logfile are unused).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True
            log.addFilter(redact_queries)

    # gunicorn logs through these: a line should name gunicorn's code, not them.
    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, stacklevel=2, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, stacklevel=2, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, stacklevel=2, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, stacklevel=2, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, stacklevel=2, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, stacklevel=2, **kwargs)


# A query in a message: from "?" to the end of the word, less the quote that closes a
# request line that gunicorn quoted.
QUERY_IN_MESSAGE = re.compile(r"(?<=\?)\S+?(?=['\"]?(?:\s|$))")


def redact_queries(record: logging.LogRecord) -> bool:
    """gunicorn quotes the request line or the URI of a request it rejects."""
    message = record.getMessage()
    if "?" in message:
        record.msg = QUERY_IN_MESSAGE.sub(lambda query: redact_query(query.group()), message)
        record.args = ()
    return True


logger_class = AppFormatLogger


class ClientSocket(socket.socket):
    """A client's connection, read without waiting long for the client.

    While a request is read, a read still waiting at `deadline` raises RequestTimeout
    (a 408). The worker's main thread serves every connection of the worker, and closes
    them "gracefully", waiting up to 2 s for the client to close its side: there, a
    read takes only what has already arrived.
    """

    deadline: float | None = None

    def recv(self, size: int, flags: int = 0) -> bytes:
        in_main_thread = threading.current_thread() is threading.main_thread()
        if self.deadline is None and not in_main_thread:
            return super().recv(size, flags)
        wait = 0.0 if in_main_thread else self.deadline - time.monotonic()
        self.settimeout(max(wait, 0.0))
        try:
            return super().recv(size, flags)
        except (TimeoutError, BlockingIOError):
            if in_main_thread:
                return b""
            raise RequestTimeout() from None
        finally:
            self.settimeout(None)


class Running(NamedTuple):
    environ: dict
    started: float


class SafeThreadWorker(ThreadWorker):
    """gunicorn's threaded worker (gthread), safe to face slow clients directly.

    - gthread waits for a client's request as long as the client likes, holding a
      thread: here the client has timeout / 2 for its request line and headers, and as
      long again for its body, then gets a 408. (Not with gunicorn's own TLS.)
    - gthread accepts connections it has no thread for, to wait behind slow clients
      while another worker may be idle: here a worker accepts only for a free thread.
    - gthread lets a stuck request run forever: here a request still running after
      `timeout` stops the worker's heartbeat, as it would a sync worker's. The master
      aborts the worker, which answers and logs each request it is still running
      (504, or 503 for the others) and exits at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_connections = self.cfg.threads
        self.read_timeout = self.cfg.timeout / 2 or None
        self.running: dict[int, Running] = {}

    def handle(self, conn: Any) -> Any:
        if not self.cfg.is_ssl and type(conn.sock) is socket.socket:
            conn.sock = ClientSocket(fileno=conn.sock.detach())
        self.set_read_deadline(conn, self.read_timeout)  # request line and headers
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        self.set_read_deadline(conn, self.read_timeout)  # the body, which the app reads
        try:
            return super().handle_request(req, conn)
        finally:
            self.set_read_deadline(conn, None)

    def set_read_deadline(self, conn: Any, seconds: float | None) -> None:
        if isinstance(conn.sock, ClientSocket):
            conn.sock.deadline = None if seconds is None else time.monotonic() + seconds

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if not isinstance(exc, RequestTimeout):
            return super().handle_error(req, client, addr, exc)
        self.log.warning(
            "Request from ip=%s not received within %g s",
            addr[0],
            self.read_timeout,
            extra={"status": "408 REQUEST TIMEOUT"},
        )
        util.write_error(client, 408, "Request Timeout", "the request came too slowly")
        return None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi.wsgi_app = partial(self.run_app, self.wsgi.wsgi_app)

    def run_app(self, app: Any, environ: dict, start_response: Any) -> Any:
        """The app, with the request counted as running until the app answers."""
        key = id(environ)
        self.running[key] = Running(environ, time.monotonic())

        def answer(*args: Any) -> Any:
            self.running.pop(key, None)
            return start_response(*args)

        try:
            return app(environ, answer)
        finally:
            self.running.pop(key, None)

    def notify(self) -> None:
        started = [request.started for request in tuple(self.running.values())]
        if not started:
            return super().notify()
        # Silent since its oldest running request began, as a sync worker would be.
        oldest = min(started)
        os.utime(self.tmp.fileno(), (oldest, oldest))
        return None

    def handle_abort(self, sig: int, frame: Any) -> None:
        """Exits at once: a thread cannot be stopped, and waiting for a stuck one would
        let it answer and log a second time."""
        self.alive = False
        self.cfg.worker_abort(self)
        try:
            for request in tuple(self.running.values()):
                self.abandon(request)
        finally:
            os._exit(1)

    def abandon(self, request: Running) -> None:
        """Answers a request the app is still running, and logs its request line."""
        elapsed = time.monotonic() - request.started
        if elapsed >= self.cfg.timeout:
            status, problem = HTTPStatus.GATEWAY_TIMEOUT, f"over the {self.cfg.timeout} s timeout"
        else:
            status, problem = HTTPStatus.SERVICE_UNAVAILABLE, "its worker was stopped"
        with contextlib.suppress(OSError):  # the client has gone
            util.write_error(
                request.environ["gunicorn.socket"], status.value, status.phrase, problem
            )
        with self.wsgi.request_context(request.environ):
            self.log.error(
                "%.1f ms, %s",
                elapsed * 1000,
                problem,
                extra={"status": f"{status.value} {status.phrase.upper()}"},
            )


worker_class = SafeThreadWorker
