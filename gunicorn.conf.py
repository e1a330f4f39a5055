"""Production defaults for `gunicorn "backend:create_app()"`.

Each setting can be overridden on the command line or in GUNICORN_CMD_ARGS.
"""

import gc
import json
import multiprocessing
import os

from gunicorn import util

# WEB_CONCURRENCY is the variable most hosting platforms set.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))

# The app is built once in the master: a configuration error stops gunicorn with
# its one-line message instead of every worker failing in turn, and workers share
# the loaded code. create_app opens no connection, so nothing is shared by the fork.
preload_app = True

# Behind a reverse proxy: drop stuck requests, keep connections from the proxy alive.
timeout = 30
graceful_timeout = 30
keepalive = 5

# Restart each worker now and then, so a slow leak cannot grow without bound. Rarely:
# a worker's exit costs it about 0.3 s of CPU and stalls the requests queued on it.
max_requests = 50_000
max_requests_jitter = 5_000

# The app logs every request itself (backend/log_setup.py).
accesslog = None


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
