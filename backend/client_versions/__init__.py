"""Client app versions: an unsupported one gets 426, a deprecated one is told its sunset.

Clients send their app's version in `CLIENT_VERSION_HEADER` (X-Version). The statuses
are rows of `client_versions`, managed with `flask versions` (cli.py); a listed version
covers every version it begins ("1.1" covers 1.1.4), the longest listed one wins, and
a version not listed is served as supported. Only API paths are checked: /health and
/metrics answer every client. Each worker keeps the table in memory (table.py).
"""

from flask import Flask, Response, abort, after_this_request, request
from werkzeug.exceptions import HTTPException

from backend.client_versions.cli import versions_cli
from backend.client_versions.models import UNSUPPORTED
from backend.client_versions.table import SYNTAX_HELP, VersionTable, parse_version, version_text

API_PATHS = "/api/"


class UpgradeRequired(HTTPException):
    """426, which werkzeug has no class for; answered as JSON by backend/errors.py."""

    code = 426


def init_client_versions(app: Flask) -> None:
    # The command works while the check is off: versions can be listed before turning it on.
    app.cli.add_command(versions_cli)
    if not app.config["CLIENT_VERSIONS_ENABLED"]:
        return
    header = app.config["CLIENT_VERSION_HEADER"]
    environ_key = "HTTP_" + header.upper().replace("-", "_")
    table = VersionTable(app.config["CLIENT_VERSIONS_REFRESH_SECONDS"])

    def check_client_version() -> None:
        sent = request.environ.get(environ_key)
        if sent is None or not request.path.startswith(API_PATHS):
            return
        version = parse_version(sent)
        if version is None:
            abort(400, description=f"Invalid {header} header: send {SYNTAX_HELP}.")
        status = table.find(version)
        if status is None:
            return
        if status.name == UNSUPPORTED:
            raise UpgradeRequired(
                f"Version {version_text(version)} of this app is no longer supported: "
                "update the app."
            )
        if status.headers:

            @after_this_request
            def announce_sunset(response: Response) -> Response:
                response.headers.update(status.headers)
                return response

    app.before_request(check_client_version)
