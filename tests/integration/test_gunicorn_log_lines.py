"""gunicorn's lines about its workers, in the app's log format (gunicorn.conf.py's
AppFormatLogger); its boot lines and rejected requests: test_gunicorn.py."""

import os
import re
import signal
import time

import pytest

from tests.integration.test_gunicorn import LOG_LINE

pytestmark = pytest.mark.integration

BOOTED = re.compile(r"Booting worker with pid: (\d+)$")


def booted_workers(server, count: int) -> list[int]:
    """The pids of the first `count` workers gunicorn booted, once it has booted that many."""
    deadline = time.monotonic() + 15
    while True:
        lines = server.stderr().splitlines()
        pids = [int(found[1]) for line in lines if (found := BOOTED.search(line))]
        if len(pids) >= count or time.monotonic() > deadline:
            assert len(pids) >= count, server.stderr()
            return pids[:count]
        time.sleep(0.1)


def test_a_killed_worker_and_its_replacement_are_logged_in_the_app_format(
    database_url, start_gunicorn
):
    server = start_gunicorn(workers=2, DATABASE_URL=database_url)
    victim, survivor = booted_workers(server, 2)

    os.kill(victim, signal.SIGKILL)
    replacement = booted_workers(server, 3)[2]
    server.stop()

    stderr, log = server.stderr(), server.log_file.read_text()
    expected = {
        f"Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?": "ERROR",
        f"Worker exiting (pid: {survivor})": "INFO",
        f"Worker exiting (pid: {replacement})": "INFO",
    }
    for message, level in expected.items():
        [line] = [line for line in stderr.splitlines() if message in line]
        fields = LOG_LINE.match(line)
        assert fields, f"not in the log format: {line!r}"
        assert (fields["level"], fields["message"]) == (level, message)
        assert fields["where"].startswith("gunicorn.error.")
        assert line in log, "gunicorn's lines go to the log file too"
