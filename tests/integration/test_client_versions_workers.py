"""Client versions under several gunicorn workers: `flask versions set`, run in another
process, is applied by every worker within CLIENT_VERSIONS_REFRESH_SECONDS."""

import http.client
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.servers import AUTH_HEADER, AUTH_KEY, BIN, ROOT, base_env

pytestmark = pytest.mark.integration

REFRESH_SECONDS = 1
SUNSET_HEADER = "Thu, 31 Dec 2099 00:00:00 GMT"


def get(url: str, version: str, path: str = "/api/v1/users") -> tuple[int, dict, dict]:
    """(status, JSON body, headers) on a fresh connection, so that any worker may answer."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        connection.request("GET", path, headers={AUTH_HEADER: AUTH_KEY, "X-Version": version})
        response = connection.getresponse()
        return response.status, json.loads(response.read()), dict(response.getheaders())
    finally:
        connection.close()


def replies(url: str, version: str, count: int = 30) -> list[tuple[int, dict, dict]]:
    return [get(url, version) for _ in range(count)]


def flask_versions(tmp_path: Path, database_url: str, *args: str) -> None:
    env = base_env(tmp_path) | {"DATABASE_URL": database_url, "FLASK_LOG_FILE": "null"}
    result = subprocess.run(
        [str(BIN / "flask"), "versions", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_worker_applies_a_change_made_from_another_process_within_seconds(
    database_url, start_gunicorn, tmp_path
):
    server = start_gunicorn(
        workers=3,
        DATABASE_URL=database_url,
        FLASK_CLIENT_VERSIONS_REFRESH_SECONDS=str(REFRESH_SECONDS),
    )
    # Every worker reads the table before the change.
    assert all(status == 200 for status, _, _ in replies(server.url, "0.9"))

    flask_versions(tmp_path, database_url, "set", "0.9", "unsupported")
    flask_versions(tmp_path, database_url, "set", "1.1", "deprecated", "--sunset", "2099-12-31")
    changed = time.monotonic()

    while not all(status == 426 for status, _, _ in replies(server.url, "0.9")):
        assert time.monotonic() - changed < REFRESH_SECONDS + 5, "a worker kept the old table"
    status, body, _ = get(server.url, "0.9.3")
    assert status == 426
    assert body["message"] == "Version 0.9.3 of this app is no longer supported: update the app."
    for status, _, headers in replies(server.url, "1.1.2"):
        assert status == 200
        assert headers["Sunset"] == SUNSET_HEADER
        assert headers["Deprecation"].startswith("@")
    status, _, headers = get(server.url, "2.0")
    assert status == 200 and "Deprecation" not in headers
    assert get(server.url, "0.9", path="/health")[0] == 200
    status, body, _ = get(server.url, "latest")
    assert status == 400 and body["message"].startswith("Invalid X-Version header")
