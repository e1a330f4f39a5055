"""Fixtures that start gunicorn servers and give them a migrated database."""

import subprocess

import pytest

from tests.integration.servers import APP, BIN, ROOT, TEST_DATABASE_URL, Gunicorn, base_env


@pytest.fixture
def start_gunicorn(tmp_path):
    """Starts gunicorn and waits until it answers; every server is stopped afterwards."""
    servers: list[Gunicorn] = []

    def start(workers: int, wait: bool = True, app: str = APP, **env: str | None) -> Gunicorn:
        server = Gunicorn(tmp_path, f"gunicorn{len(servers)}", workers, env, app)
        servers.append(server)
        server.start()
        if wait:
            server.wait_until_answering()
        return server

    yield start
    for server in servers:
        try:
            server.stop()
        finally:
            server.kill_leftovers()


@pytest.fixture
def database_url(request, tmp_path):
    """A migrated database: TEST_DATABASE_URL (emptied after the test) or a SQLite file.

    Request it before start_gunicorn: fixtures are torn down in reverse, so the
    servers stop before the tables are truncated.
    """
    if TEST_DATABASE_URL:
        # The conftest's app fixture migrates once per run and truncates in its teardown.
        request.getfixturevalue("app")
        return TEST_DATABASE_URL
    url = f"sqlite:///{tmp_path / 'integration.db'}"
    env = base_env(tmp_path) | {"DATABASE_URL": url, "FLASK_LOG_FILE": "null"}
    env["FLASK_ENVIRONMENT"] = "development"
    result = subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return url
