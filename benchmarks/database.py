"""A PostgreSQL database of the benchmark's own, made for one run and dropped after it."""

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def database_url(server_url: str, name: str) -> str:
    """The server URL (any database in its path) with the database replaced."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(server_url: str, statement: str) -> None:
    # CREATE and DROP DATABASE cannot run in a transaction.
    connection = psycopg2.connect(server_url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_database(server_url: str, name: str) -> str:
    _admin(server_url, f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    # FORCE ends connections a stuck worker may still hold (PostgreSQL 13+).
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_in_project(command: list[str], env: dict[str, str]) -> str:
    """Runs a command from the project root; its stdout, or an error with its stderr."""
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-4000:]}")
    return completed.stdout


def migrate(env: dict[str, str]) -> None:
    """`flask db upgrade`, exactly as a deploy runs it."""
    run_in_project([str(BIN / "flask"), "db", "upgrade"], env)


def seed(env: dict[str, str], users: int, items: int) -> dict:
    """Rows by the thousand (benchmarks/seed.py); returns the hash method and cost."""
    output = run_in_project([sys.executable, "-m", "benchmarks.seed", str(users), str(items)], env)
    return json.loads(output.splitlines()[-1])
