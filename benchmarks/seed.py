"""Fills the benchmark database in a few seconds, in the template's own environment.

    python -m benchmarks.seed USERS ITEMS      (after `flask db upgrade`)

Rows are made by PostgreSQL (INSERT ... SELECT generate_series), not one by one.
Every user gets the same valid password hash, made once with the template's own
`User.set_password`, so the seed costs one hash instead of ten thousand. Prints one
JSON line: the hash's parameters and the time one hash takes, which is most of what
creating a user costs.
"""

import json
import statistics
import sys
import time

from sqlalchemy import text

from backend import create_app
from backend.extensions import db
from backend.features.users.models import User

PASSWORD = "benchmark-password"
HASH_SAMPLES = 5

USERS_SQL = """
INSERT INTO users (email, name, password_hash, created_at, updated_at)
SELECT 'user' || n || '@example.com', 'User ' || n, :password_hash, now(), now()
FROM generate_series(1, :count) AS n
"""
ITEMS_SQL = """
INSERT INTO items (title, description, owner_id, created_at, updated_at)
SELECT 'Item ' || n, 'The description of item ' || n, 1 + n % :users, now(), now()
FROM generate_series(1, :count) AS n
"""


def hash_once() -> tuple[str, float]:
    """A password hash made the template's way, and the seconds it took."""
    user = User()
    started = time.perf_counter()
    user.set_password(PASSWORD)
    return user.password_hash, time.perf_counter() - started


def main() -> None:
    users, items = int(sys.argv[1]), int(sys.argv[2])
    app = create_app()
    with app.app_context():
        samples = [hash_once() for _ in range(HASH_SAMPLES)]
        db.session.execute(text(USERS_SQL), {"password_hash": samples[0][0], "count": users})
        db.session.execute(text(ITEMS_SQL), {"users": users, "count": items})
        db.session.commit()
        # Fresh statistics, so the planner does not start from an empty table.
        db.session.execute(text("ANALYZE users, items"))
        db.session.commit()
        config = app.config
        argon2 = [config[f"ARGON2_{name}"] for name in ("TIME_COST", "MEMORY_COST", "PARALLELISM")]
    hash_ms = statistics.median(seconds for _hash, seconds in samples) * 1000
    method = "argon2id t={} m={} p={}".format(*argon2)
    print(json.dumps({"method": method, "argon2": argon2, "hash_ms": round(hash_ms, 1)}))


if __name__ == "__main__":
    main()
