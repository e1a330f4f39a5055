"""`flask scaffold`: checks the resource, writes its files, and says what to run next."""

import logging
from pathlib import Path

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import DBAPIError

from backend.extensions import db


@click.command(
    "scaffold", epilog="Example: flask scaffold books title:str summary:text? owner:fk=users"
)
@click.argument("name")
@click.argument("fields", nargs=-1)
@click.option("--singular", help="The singular of NAME, if the English rules get it wrong.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The project folder to write into (default: the app's).",
)
@with_appcontext
def scaffold_command(
    name: str, fields: tuple[str, ...], singular: str | None, root: Path | None
) -> None:
    """Add the resource NAME (plural, like widgets): model, schemas, handlers, tests.

    Each FIELD is name:type, the type one of str, str:LENGTH, text, int, decimal,
    bool, date, datetime or fk=TABLE; a trailing ? makes it optional. Without
    fields: name:str description:text?
    """
    # Imported here, not at the top: every worker registers this command at start and
    # would pay about 10 ms of import for a tool only developers run.
    from backend.scaffold.specs import check_against_app, parse_resource
    from backend.scaffold.writer import format_with_ruff, plan, write

    resource = check_against_app(parse_resource(name, fields, singular))
    root = root or Path(current_app.root_path).parent
    files = plan(resource, root)
    write(files)
    python_files = [path for path in files if path.name != "app.py"]
    formatted = format_with_ruff(python_files, root)

    click.echo(f"Added {name}: model {resource.model}, scopes {' and '.join(resource.scopes)}.")
    for path in python_files:
        click.echo(f"  {path.relative_to(root)}")
    click.echo(f'  backend/app.py: "{name}" in FEATURES')
    if not formatted:
        click.echo("ruff is not installed: format these files with it before committing.")
    click.echo("Next:")
    if not database_is_current(root / current_app.extensions["migrate"].directory):
        click.echo(
            "  flask db upgrade                    # autogenerate compares with the database"
        )
    click.echo(f'  flask db migrate -m "add {name}"     # then read the generated migration')
    click.echo("  flask openapi export -o docs/openapi.json")


def database_is_current(migrations: Path) -> bool:
    """Whether the database is at the latest migration, which `flask db migrate` needs."""
    config = current_app.extensions["migrate"].migrate.get_config(str(migrations))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    # Alembic logs which database it found at INFO: not news here.
    alembic_logger = logging.getLogger("alembic.runtime.migration")
    level = alembic_logger.level
    alembic_logger.setLevel(logging.WARNING)
    try:
        with db.engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads()) == heads
    except DBAPIError:
        return False
    finally:
        alembic_logger.setLevel(level)
