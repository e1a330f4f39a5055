"""Costs outside requests: create_app() in a fresh process, and the test suite's wall time."""

import json
import statistics
import subprocess
import sys
import time

from benchmarks.database import BIN, ROOT, run_in_project

# Runs in a fresh interpreter, so every import is paid as a worker or CLI pays it.
COLD_START = """
import json, time
started = time.perf_counter()
from backend import create_app
imported = time.perf_counter()
create_app()
finished = time.perf_counter()
print(json.dumps({"import_s": imported - started, "create_app_s": finished - imported}))
"""
TEST_COMMAND = [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "--no-cov"]


def cold_start(env: dict[str, str], runs: int) -> dict[str, float]:
    """Medians over `runs` fresh processes, in seconds.

    create_app_s: the call alone (imports done); import_and_create_app_s: from the
    first import of the app to the app built; process_s: the whole process, the
    interpreter's own start and exit included.
    """
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        started = time.perf_counter()
        output = run_in_project([sys.executable, "-c", COLD_START], env)
        sample = json.loads(output.splitlines()[-1])
        sample["process_s"] = time.perf_counter() - started
        samples.append(sample)

    def median(key: str) -> float:
        return round(statistics.median(sample[key] for sample in samples), 3)

    return {
        "runs": runs,
        "create_app_s": median("create_app_s"),
        "import_and_create_app_s": round(
            statistics.median(s["import_s"] + s["create_app_s"] for s in samples), 3
        ),
        "process_s": median("process_s"),
    }


def time_test_suite(env: dict[str, str]) -> dict[str, object]:
    """One run of the suite as a developer runs it, timed from outside, servers stopped."""
    started = time.perf_counter()
    completed = subprocess.run(
        TEST_COMMAND, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    summary = (completed.stdout.strip().splitlines() or [""])[-1]
    return {
        "command": " ".join(["pytest", *TEST_COMMAND[1:]]),
        "wall_s": round(time.perf_counter() - started, 1),
        "exit_status": completed.returncode,
        "summary": summary,
    }
