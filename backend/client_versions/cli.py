"""`flask versions set 1.1 deprecated --sunset 2027-06-30`: the statuses of client app versions."""

from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from backend.client_versions.models import DEPRECATED, STATUSES, ClientVersion
from backend.client_versions.table import SYNTAX_HELP, parse_version, version_text
from backend.database import utcnow
from backend.extensions import db

versions_cli = AppGroup("versions", help="Client app versions: supported, deprecated, unsupported.")


@versions_cli.command("set")
@click.argument("version")
@click.argument("status")
@click.option("--sunset", metavar="YYYY-MM-DD", help="Required for deprecated: the last day.")
def set_version(version: str, status: str, sunset: str | None) -> None:
    """Set the STATUS (supported, deprecated, unsupported) of VERSION and of every
    version it begins: 1.1 covers 1.1.4, unless 1.1.4 has a status of its own."""
    text = _normalized(version)
    if status not in STATUSES:
        raise click.ClickException(f"Unknown status {status!r}: one of {', '.join(STATUSES)}.")
    sunset_day = _sunset_day(status, sunset)
    row = db.session.get(ClientVersion, text)
    if row is None:
        row = ClientVersion(version=text)
        db.session.add(row)
    if row.status != status:
        row.changed_at = utcnow()
    row.status, row.sunset = status, sunset_day
    db.session.commit()
    config = current_app.config
    if config["CLIENT_VERSIONS_ENABLED"]:
        applied = f"Every worker applies it within {config['CLIENT_VERSIONS_REFRESH_SECONDS']} s."
    else:
        applied = "CLIENT_VERSIONS_ENABLED is off: no request is checked."
    click.echo(f"{_line(row)}\n{applied}")


@versions_cli.command("remove")
@click.argument("version")
def remove_version(version: str) -> None:
    """Forget VERSION's status: it is served as the versions it begins with are."""
    row = db.session.get(ClientVersion, _normalized(version))
    if row is None:
        raise click.ClickException(f"Version {version} is not listed.")
    db.session.delete(row)
    db.session.commit()
    click.echo(f"Removed {row.version}.")


@versions_cli.command("list")
def list_versions() -> None:
    """List the versions with a status; any other version is served as supported."""
    rows = db.session.scalars(select(ClientVersion)).all()
    if not rows:
        click.echo("No versions listed: every version is served as supported.")
    for row in sorted(rows, key=lambda row: parse_version(row.version) or ()):
        click.echo(_line(row))


def _normalized(version: str) -> str:
    parsed = parse_version(version)
    if parsed is None:
        raise click.ClickException(f"Invalid version {version!r}: give {SYNTAX_HELP}.")
    return version_text(parsed)


def _sunset_day(status: str, sunset: str | None) -> date | None:
    if status != DEPRECATED:
        if sunset is not None:
            raise click.ClickException("--sunset is for deprecated versions only.")
        return None
    if sunset is None:
        raise click.ClickException("A deprecated version needs --sunset YYYY-MM-DD.")
    try:
        day = date.fromisoformat(sunset)
    except ValueError:
        raise click.ClickException(f"Invalid --sunset {sunset!r}: give YYYY-MM-DD.") from None
    if day < utcnow().date():
        raise click.ClickException(
            f"The sunset {day} is past: set the version unsupported instead."
        )
    return day


def _line(row: ClientVersion) -> str:
    sunset = f"sunset {row.sunset}" if row.sunset else ""
    since = f"since {row.changed_at:%Y-%m-%d %H:%M} UTC"
    return f"{row.version:<12} {row.status:<12} {sunset:<18} {since}"
