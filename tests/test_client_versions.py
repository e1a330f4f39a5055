"""X-Version: 400 when malformed, 426 when unsupported, Deprecation and Sunset when deprecated."""

import logging
import re
import time

import pytest
from sqlalchemy import event, text

from backend.client_versions import table
from backend.extensions import db

SUNSET = "2099-12-31"
SUNSET_HEADER = "Thu, 31 Dec 2099 00:00:00 GMT"


@pytest.fixture
def versions_app(make_app):
    # Read at every request, so a change made with the command applies at once.
    return make_app(CLIENT_VERSIONS_REFRESH_SECONDS=0)


@pytest.fixture
def versions(versions_app):
    """Runs `flask versions ...` and returns (exit code, output)."""
    runner = versions_app.test_cli_runner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(args=["versions", *args])
        return result.exit_code, result.output

    return run


@pytest.fixture
def get(versions_app, auth_headers):
    """GET /api/v1/users (or another path) as a client of that version."""
    client = versions_app.test_client()

    def send(version: str | None, path: str = "/api/v1/users", **headers: str):
        headers = {**auth_headers, **headers}
        if version is not None:
            headers["X-Version"] = version
        return client.get(path, headers=headers)

    return send


def test_without_the_header_every_request_is_served_as_before(versions, get):
    versions("set", "0", "unsupported")

    response = get(None)

    assert response.status_code == 200
    assert "Deprecation" not in response.headers


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "abc",
        "v1.2",
        "1.2-beta",
        "1..2",
        "1.2.",
        ".1",
        "1.2.3.4.5",
        "1,2",
        "\u00b9.2",  # a superscript one: a digit to Python, not to the syntax
        "1." * 16 + "1",
    ],
)
def test_a_malformed_version_is_400_naming_the_header(get, sent):
    response = get(sent)

    assert response.status_code == 400
    assert response.json["message"] == (
        "Invalid X-Version header: send 1 to 4 numbers separated by dots, such as 1.2 or 1.2.3."
    )
    assert response.json["request_id"] == response.headers["X-Request-ID"]


def test_an_unsupported_version_is_426_before_authentication(versions, get):
    versions("set", "0.9", "unsupported")

    response = get("0.9", **{"X-AUTH-API-KEY": ""})

    assert response.status_code == 426
    assert response.json == {
        "message": "Version 0.9 of this app is no longer supported: update the app.",
        "request_id": response.headers["X-Request-ID"],
    }


def test_a_deprecated_version_is_served_with_deprecation_and_sunset(versions, get):
    before = int(time.time())
    versions("set", "1.1", "deprecated", "--sunset", SUNSET)
    after = int(time.time())

    response = get("1.1")

    assert response.status_code == 200
    deprecated_at = re.fullmatch(r"@(\d+)", response.headers["Deprecation"])
    assert deprecated_at and before <= int(deprecated_at[1]) <= after
    assert response.headers["Sunset"] == SUNSET_HEADER
    assert get("1.1", path="/api/v1/users/999").headers["Sunset"] == SUNSET_HEADER  # errors too


def test_a_listed_version_covers_the_versions_it_begins_and_the_longest_wins(versions, get):
    versions("set", "1", "unsupported")
    versions("set", "1.1", "deprecated", "--sunset", SUNSET)
    versions("set", "1.1.5", "supported")

    assert get("1.4.2").status_code == 426
    assert get("01.1").headers["Sunset"] == SUNSET_HEADER  # numbers, not strings
    assert get("1.1.3.9").headers["Sunset"] == SUNSET_HEADER
    served = get("1.1.5.2")
    assert served.status_code == 200 and "Sunset" not in served.headers
    assert get("10.1").status_code == 200  # "1" is a number, not a prefix of the text


def test_a_version_not_listed_is_served_as_supported(versions, get):
    versions("set", "0.9", "unsupported")

    response = get("2.0")

    assert response.status_code == 200
    assert "Deprecation" not in response.headers


def test_only_api_paths_are_checked(versions, get):
    versions("set", "0.9", "unsupported")

    assert get("0.9", path="/health").status_code == 200
    assert get("not a version", path="/health").status_code == 200


def test_turned_off_every_version_is_served(make_app, auth_headers):
    app = make_app(CLIENT_VERSIONS_ENABLED=False)
    result = app.test_cli_runner().invoke(args=["versions", "set", "0.9", "unsupported"])
    assert result.output.endswith("CLIENT_VERSIONS_ENABLED is off: no request is checked.\n")
    client = app.test_client()

    for sent in ("0.9", "not a version"):
        response = client.get("/api/v1/users", headers={**auth_headers, "X-Version": sent})
        assert response.status_code == 200


def test_each_worker_reads_the_table_once_per_interval_not_per_request(
    make_app, auth_headers, monkeypatch
):
    app = make_app(CLIENT_VERSIONS_REFRESH_SECONDS=60)
    client = app.test_client()
    now = time.monotonic()
    monkeypatch.setattr(table, "monotonic", lambda: now)
    reads = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *a: reads.append(a[2]))

    def status(version: str | None) -> int:
        headers = {**auth_headers, **({"X-Version": version} if version else {})}
        return client.get("/api/v1/items/stats", headers=headers).status_code

    def table_reads() -> int:
        return sum("FROM client_versions" in statement for statement in reads)

    assert status(None) == 200
    assert table_reads() == 0
    assert [status("0.9"), status("0.9")] == [200, 200]
    app.test_cli_runner().invoke(args=["versions", "set", "0.9", "unsupported"])
    reads.clear()  # the command's own statements
    assert status("0.9") == 200  # the copy read a moment ago still applies
    now += 60
    assert [status("0.9"), status("0.9")] == [426, 426]
    assert table_reads() == 1


def test_while_the_table_cannot_be_read_the_last_read_applies_with_one_warning(
    versions_app, versions, get, caplog
):
    versions("set", "0.9", "unsupported")
    assert get("0.9").status_code == 426

    def rename(old: str, new: str) -> None:
        with versions_app.app_context():
            db.session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
            db.session.commit()

    rename("client_versions", "client_versions_away")
    try:
        with caplog.at_level(logging.WARNING, logger=table.__name__):
            assert [get("0.9").status_code, get("0.9").status_code] == [426, 426]
    finally:
        rename("client_versions_away", "client_versions")

    [warning] = [r.getMessage() for r in caplog.records if r.name == table.__name__]
    assert warning.startswith("Client versions: cannot read the table (")
    versions("remove", "0.9")
    assert get("0.9").status_code == 200


def test_the_command_sets_lists_and_removes_versions(versions):
    assert versions("list") == (
        0,
        "No versions listed: every version is served as supported.\n",
    )
    code, output = versions("set", "1.10", "supported")
    assert code == 0 and output.endswith("Every worker applies it within 0 s.\n")
    assert versions("set", "01.9", "deprecated", "--sunset", SUNSET)[0] == 0
    assert versions("set", "1.9", "unsupported")[0] == 0

    code, output = versions("list")

    assert code == 0
    assert [line.split()[:2] for line in output.splitlines()] == [
        ["1.9", "unsupported"],
        ["1.10", "supported"],
    ]
    assert versions("remove", "1.9") == (0, "Removed 1.9.\n")
    assert [line.split()[0] for line in versions("list")[1].splitlines()] == ["1.10"]


def test_a_new_sunset_keeps_the_date_the_version_was_deprecated(versions, get):
    versions("set", "1.1", "deprecated", "--sunset", "2099-01-01")
    first = get("1.1").headers["Deprecation"]
    versions("set", "1.1", "deprecated", "--sunset", SUNSET)

    response = get("1.1")

    assert response.headers["Deprecation"] == first
    assert response.headers["Sunset"] == SUNSET_HEADER


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["set", "1.x", "supported"],
            "Invalid version '1.x': give 1 to 4 numbers separated by dots, such as 1.2 or 1.2.3.",
        ),
        (
            ["set", "1.2", "retired"],
            "Unknown status 'retired': one of supported, deprecated, unsupported.",
        ),
        (["set", "1.2", "deprecated"], "A deprecated version needs --sunset YYYY-MM-DD."),
        (
            ["set", "1.2", "deprecated", "--sunset", "30/06/2099"],
            "Invalid --sunset '30/06/2099': give YYYY-MM-DD.",
        ),
        (
            ["set", "1.2", "deprecated", "--sunset", "2000-01-01"],
            "The sunset 2000-01-01 is past: set the version unsupported instead.",
        ),
        (
            ["set", "1.2", "unsupported", "--sunset", SUNSET],
            "--sunset is for deprecated versions only.",
        ),
        (["remove", "1.2"], "Version 1.2 is not listed."),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(versions, args, error):
    assert versions(*args) == (1, f"Error: {error}\n")
    assert versions("list")[1].startswith("No versions listed")
