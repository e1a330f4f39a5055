"""Jobs for the scheduler tests, importable as "tests.scheduled_jobs:<name>"."""

from flask import g
from sqlalchemy import text

from backend.extensions import db
from backend.features.users.models import User

# What the jobs saw, for the tests to read (one process).
seen: list[dict] = []


def record() -> None:
    seen.append({"scheduled_run_time": g.job_run["scheduled_run_time"], "session": db.session()})


def fail() -> None:
    raise RuntimeError("failed on purpose")


def check_session() -> None:
    session = db.session()
    seen.append({"clean": not session.new and not session.dirty and not session.identity_map})
    # Left behind on purpose: the next run must not find them.
    db.session.add(User(email=f"left-{len(seen)}@example.com", name="Left", password_hash="-"))
    db.session.execute(text("SELECT 1"))
