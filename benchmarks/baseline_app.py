"""The baseline: a bare Flask app that runs the template's SQL, the floor it is measured against.

No ORM, no schemas, no auth, no request log, no cache: psycopg2 with a small
connection pool per worker, and `jsonify`. Every endpoint sends the same statements
the template's handler needs (same columns, same count query), so a template/baseline
ratio is the price of everything the template adds around the database work. Extra
round trips the template makes (pool_pre_ping, the reload after a commit) are not
copied: they are part of that price.

Served by gunicorn with `baseline_gunicorn.py`; configured by the environment:
BASELINE_DATABASE_URL, and BASELINE_ARGON2 ("time_cost,memory_cost,parallelism": the
template's argon2id parameters, so creating a user costs the same hash).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions
from argon2 import PasswordHasher
from flask import Flask, Response, jsonify, request
from psycopg2.pool import SimpleConnectionPool

# Every column, as the ORM's select(User) and select(Item) send them.
USER_COLUMNS = ", ".join(
    f"users.{name}"
    for name in (
        "id",
        "email",
        "name",
        "password_hash",
        "role",
        "blocked",
        "created_at",
        "updated_at",
    )
)
ITEM_COLUMNS = ", ".join(
    f"items.{name}"
    for name in ("id", "title", "description", "owner_id", "created_at", "updated_at")
)
MAX_LIMIT = 100

app = Flask(__name__)
_pools: dict[int, SimpleConnectionPool] = {}


@contextmanager
def connection() -> Iterator[psycopg2.extensions.connection]:
    """A pooled connection; the pool rolls back whatever the request left open.

    One pool per process, made on first use: gunicorn preloads this module in the
    master, and a connection must never be shared across the fork.
    """
    pool = _pools.get(os.getpid())
    if pool is None:
        pool = _pools[os.getpid()] = SimpleConnectionPool(1, 4, os.environ["BASELINE_DATABASE_URL"])
    conn = pool.getconn()
    try:
        yield conn
    finally:
        pool.putconn(conn)


def fetch(sql: str, *params: object) -> list[tuple]:
    with connection() as conn, conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def user_json(row: tuple) -> dict[str, Any]:
    user_id, email, name, _password_hash, role, blocked, created_at, updated_at = row
    return {
        "id": user_id,
        "email": email,
        "name": name,
        "role": role,
        "blocked": blocked,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
    }


def item_json(row: tuple) -> dict[str, Any]:
    item_id, title, description, owner_id, created_at, updated_at = row
    return {
        "id": item_id,
        "title": title,
        "description": description,
        "owner_id": owner_id,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
    }


def page_args() -> tuple[int, int] | None:
    """limit and offset as the template accepts them, or None when they are invalid."""
    try:
        limit = int(request.args.get("limit", 20))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        return None
    return (limit, offset) if 1 <= limit <= MAX_LIMIT and offset >= 0 else None


def page(table: str, columns: str, to_json: Any) -> Response | tuple[Response, int]:
    """The template's two list statements: the count of the unpaged query, then one page."""
    args = page_args()
    if args is None:
        return jsonify(message="Query string parameters are invalid."), 400
    limit, offset = args
    with connection() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) AS count_1 FROM (SELECT {columns} FROM {table}) AS anon_1")
        (total,) = cursor.fetchone()
        cursor.execute(
            f"SELECT {columns} FROM {table} ORDER BY {table}.id LIMIT %s OFFSET %s", args
        )
        rows = cursor.fetchall()
    return jsonify(items=[to_json(row) for row in rows], total=total, limit=limit, offset=offset)


@app.get("/health")
def health() -> Response:
    fetch("SELECT 1")
    return jsonify(status="ok", database="ok")


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id: int) -> Response | tuple[Response, int]:
    rows = fetch(f"SELECT {USER_COLUMNS} FROM users WHERE users.id = %s", user_id)
    if not rows:
        return jsonify(message=f"User {user_id} not found."), 404
    return jsonify(user_json(rows[0]))


@app.get("/api/v1/users")
def list_users() -> Response | tuple[Response, int]:
    return page("users", USER_COLUMNS, user_json)


@app.get("/api/v1/items")
def list_items() -> Response | tuple[Response, int]:
    return page("items", ITEM_COLUMNS, item_json)


@app.post("/api/v1/users")
def create_user() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    body = request.get_json(silent=True) or {}
    email, name, password = body.get("email"), body.get("name"), body.get("password")
    if not all(isinstance(value, str) and value for value in (email, name, password)):
        return jsonify(message="JSON body parameters are invalid."), 400
    email = email.lower()
    time_cost, memory_cost, parallelism = map(int, os.environ["BASELINE_ARGON2"].split(","))
    password_hash = PasswordHasher(time_cost, memory_cost, parallelism).hash(password)
    now = datetime.now(UTC)
    with connection() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT users.id FROM users WHERE users.email = %s", (email,))
        if cursor.fetchone() is not None:
            return jsonify(message="A user with this email already exists."), 409
        cursor.execute(
            "INSERT INTO users (email, name, password_hash, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING users.id",
            (email, name, password_hash, now, now),
        )
        (user_id,) = cursor.fetchone()
        conn.commit()
    user = user_json((user_id, email, name, password_hash, "user", False, now, now))
    return jsonify(user), 201, {"Location": f"{request.path}/{user_id}"}
