"""What each layer of a request costs, timed in one process: the template's price list.

    python -m benchmarks.layers CALLS      (in the template's environment, after seeding)

Each line is the CPU time of one piece of a request, called CALLS times in a row,
median of 5 batches, next to what the baseline does instead. No HTTP and no
concurrency, so the figures are lower than the CPU ms/req under load; they say
where a request's time goes, not what it costs in a worker. Prints one JSON line.
"""

import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from itertools import cycle

from flask import Flask, request, request_finished, request_started
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from backend import create_app
from backend.auth import requires_scope
from backend.cors import vary_on_origin
from backend.extensions import cache, db
from backend.features.accounts.sessions import start_session
from backend.features.users.models import User
from backend.features.users.schemas import UserPageSchema, UserSchema
from backend.http_rules import no_content_type_without_content, reject_unstorable_query
from backend.pagination import PageQuerySchema, paginate
from benchmarks import baseline_app

BATCHES = 5
PAGE = 50
# Different ids and offsets, so that no layer answers from a warm spot.
PATHS = 500


def cpu_ms(calls: int, operation: Callable[[], object]) -> float:
    """CPU milliseconds per call: the median of BATCHES batches of `calls` calls."""
    for _ in range(max(calls // 10, 1)):
        operation()
    batches = []
    for _ in range(BATCHES):
        started = time.process_time()
        for _ in range(calls):
            operation()
        batches.append((time.process_time() - started) / calls * 1000)
    return round(statistics.median(batches), 4)


def wsgi_call(app: Flask, paths: list[str], headers: dict[str, str]) -> Callable[[], None]:
    """One request through the app's WSGI interface, cycling through environs built
    beforehand, so that building them is not timed."""
    environs = cycle([EnvironBuilder(path=path, headers=headers).get_environ() for path in paths])

    def call() -> None:
        body = app(dict(next(environs)), lambda status, response_headers, exc_info=None: None)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    return call


def measure(calls: int, users: int) -> list[dict[str, object]]:
    app = create_app()
    key = {app.config["AUTH_HEADER"]: app.config["AUTH_KEY"]}
    baseline = baseline_app.app

    def offset() -> int:
        return random.randint(0, max(users - PAGE, 0))

    user_paths = [f"/api/v1/users/{random.randint(1, users)}" for _ in range(PATHS)]
    page_paths = [f"/api/v1/users?limit={PAGE}&offset={offset()}" for _ in range(PATHS)]

    lines: list[dict[str, object]] = []

    def line(layer: str, template: float, base: float | None = None, note: str = "") -> None:
        lines.append({"layer": layer, "template_ms": template, "baseline_ms": base, "note": note})

    hit = [f"/api/v1/items?limit={PAGE}&offset=0"]
    wsgi_call(app, hit, key)()  # so that the next ones are hits
    token = signed_in(app)
    line(
        "whole request: GET user by id",
        cpu_ms(calls, wsgi_call(app, user_paths, key)),
        cpu_ms(calls, wsgi_call(baseline, user_paths, {})),
    )
    line(
        "whole request: GET user by id, bearer token",
        cpu_ms(calls, wsgi_call(app, user_paths, token)),
        cpu_ms(calls, wsgi_call(baseline, user_paths, {})),
        "an admin's token instead of the key",
    )
    line(
        f"whole request: GET {PAGE} users + total",
        cpu_ms(calls // 4, wsgi_call(app, page_paths, key)),
        cpu_ms(calls // 4, wsgi_call(baseline, page_paths, {})),
    )
    line(
        f"whole request: GET {PAGE} items, cache hit",
        cpu_ms(calls, wsgi_call(app, hit, key)),
        None,
        "baseline: no cache",
    )

    user_columns = baseline_app.USER_COLUMNS
    with app.app_context():

        def get_user() -> None:
            db.session.get(User, random.randint(1, users))
            db.session.remove()  # what the end of a request does

        def get_page() -> None:
            paginate(select(User).order_by(User.id), PAGE, offset())
            db.session.remove()

        line(
            "  database: one user by id",
            cpu_ms(calls, get_user),
            cpu_ms(
                calls,
                lambda: baseline_app.fetch(
                    f"SELECT {user_columns} FROM users WHERE users.id = %s",
                    random.randint(1, users),
                ),
            ),
            "SQLAlchemy ORM session / psycopg2",
        )
        line(
            f"  database: {PAGE} users + count",
            cpu_ms(calls // 4, get_page),
            cpu_ms(calls // 4, lambda: _baseline_page(user_columns, offset())),
            "SQLAlchemy ORM session / psycopg2",
        )
        page = paginate(select(User).order_by(User.id), PAGE, 0)
        rows = _baseline_page(user_columns, 0)
        # One instance each, as the registry holds them.
        user_schema, page_schema = UserSchema(), UserPageSchema()
        line(
            "  serialize: one user",
            cpu_ms(calls, lambda: user_schema.dump(page["items"][0])),
            cpu_ms(calls, lambda: baseline_app.user_json(rows[0])),
            "marshmallow / a dict",
        )
        line(
            f"  serialize: {PAGE} users",
            cpu_ms(calls // 4, lambda: page_schema.dump(page)),
            cpu_ms(calls // 4, lambda: [baseline_app.user_json(row) for row in rows]),
            "marshmallow / dicts",
        )
        line(
            "  cache read: answer + generation",
            cpu_ms(calls, lambda: cache.get_many("items:generation", "items:answer:x")),
            None,
            "one Redis round trip",
        )
        db.session.remove()

    with app.test_request_context(hit[0], headers=key):
        auth = requires_scope("items:read")
        line("  API-key auth", cpu_ms(calls, auth.authenticate))
    with app.test_request_context(hit[0], headers=token):
        line(
            "  bearer-token auth",
            cpu_ms(calls, auth.authenticate),
            None,
            "JWT check + session state from the shared cache",
        )
    lines.extend(price_hooks(app, calls, user_paths[0], key))
    with app.test_request_context(hit[0], headers=key):
        query, query_schema = {"limit": "50", "offset": "0"}, PageQuerySchema()
        line("  query validation", cpu_ms(calls, lambda: query_schema.load(query)))
        request_logger = logging.getLogger("backend.log_setup")
        line(
            "  request log line",
            cpu_ms(calls, lambda: request_logger.info("1.0 ms", extra={"status": "200 OK"})),
            None,
            "console + shared file",
        )
        line("  query check for NUL characters", cpu_ms(calls, reject_unstorable_query))
        answer = app.response_class(b"{}", mimetype="application/json")

        def after_every_request() -> None:
            no_content_type_without_content(answer)
            vary_on_origin(answer)

        line("  empty-answer and Vary: Origin hooks", cpu_ms(calls, after_every_request))

    new_user = {"email": "ada@example.com", "name": "Ada Lovelace", "password": "correct horse"}
    with app.test_request_context("/api/v1/users", method="POST", json=new_user):
        request.get_data()  # read once and kept, as a request does
        line(
            "  JSON body: parse + checks",
            cpu_ms(calls, lambda: request.get_json(cache=False)),
            cpu_ms(calls, lambda: json.loads(request.get_data())),
            "a new user / json.loads alone",
        )
    return lines


def price_hooks(app: Flask, calls: int, path: str, headers: dict[str, str]) -> list[dict]:
    """Each hook the app runs around every request, read from the app itself, so a layer
    added to the request path shows up here without an edit.

    Each call runs in a request of its own (some hooks do their work once per request,
    as the rate limiter does), less what an empty request context costs.
    """
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    answer = app.response_class(b"{}", mimetype="application/json")

    def in_a_request(work: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            with app.request_context(dict(environ)):
                work()

        return call

    empty = cpu_ms(calls, in_a_request(lambda: None))
    hooks = [
        *((f"before: {_hook_name(hook)}", hook, "") for hook in app.before_request_funcs[None]),
        *(
            (f"after: {_hook_name(hook)}", partial(hook, answer), "")
            for hook in reversed(app.after_request_funcs[None])
        ),
        *(
            (
                f"signal: {signal.name}",
                partial(signal.send, app, response=answer),
                ", ".join(_hook_name(receiver) for receiver in signal.receivers_for(app)),
            )
            for signal in (request_started, request_finished)
            if signal.receivers_for(app)
        ),
    ]
    return [
        {
            "layer": f"    {name}",
            "template_ms": round(max(cpu_ms(calls, in_a_request(hook)) - empty, 0.0), 4),
            "baseline_ms": None,
            "note": note,
        }
        for name, hook, note in hooks
    ]


def _hook_name(hook: Callable) -> str:
    function = getattr(hook, "func", hook)  # a functools.partial
    module = (getattr(function, "__module__", None) or type(function).__module__).split(".")
    name = getattr(function, "__name__", type(function).__name__).strip("_")
    return f"{module[1] if module[0] == 'backend' else module[0]}.{name}"


def signed_in(app: Flask) -> dict[str, str]:
    """An Authorization header for a session of user 1, made an admin for the run."""
    with app.test_request_context("/api/v1/auth/login", method="POST"):
        user = db.session.get(User, 1)
        user.role = "admin"
        pair = start_session(user, "benchmark")
        db.session.commit()
    return {"Authorization": f"Bearer {pair['access_token']}"}


def _baseline_page(columns: str, offset: int) -> list[tuple]:
    with baseline_app.connection() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) AS count_1 FROM (SELECT {columns} FROM users) AS anon_1")
        cursor.fetchone()
        cursor.execute(
            f"SELECT {columns} FROM users ORDER BY users.id LIMIT %s OFFSET %s", (PAGE, offset)
        )
        return cursor.fetchall()


def main() -> None:
    calls, users = int(sys.argv[1]), int(sys.argv[2])
    os.environ.setdefault("BASELINE_DATABASE_URL", os.environ["DATABASE_URL"])
    print(json.dumps(measure(calls, users)))


if __name__ == "__main__":
    main()
