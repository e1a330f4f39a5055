"""`flask users create EMAIL`: accounts from the command line, the first admin included."""

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from backend.features.users.schemas import CreateUserSchema
from backend.features.users.service import create_account, find_by_email

cli = AppGroup("users", help="Manage user accounts.")


@cli.command("create")
@click.argument("email")
@click.option("--name", help="Defaults to the part of the email before the @.")
@click.option("--role", default="user", show_default=True, help="One of ROLES in the settings.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.",
)
def create_user_command(email: str, name: str | None, role: str, password_stdin: bool) -> None:
    """Create an account; the password is prompted for (twice), never an argument."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    data = {"email": email, "name": name or email.partition("@")[0], "password": password}
    try:
        body = CreateUserSchema().load({**data, "role": role})
    except ValidationError as error:
        problems = "; ".join(
            f"{field}: {' '.join(map(str, why))}"
            for field, why in error.normalized_messages().items()
        )
        raise click.UsageError(problems) from None
    if find_by_email(body["email"]) is not None:
        raise click.UsageError(f"A user with the email {body['email']} already exists.")
    user = create_account(body, "user_created", f"role={body['role']} by flask users")
    click.echo(f"Created user {user.id} <{user.email}> with the role {user.role}.")
    current_app.logger.info("User %d created from the command line.", user.id)
