"""The running API keeps to its OpenAPI document, under generated and hostile requests.

Schemathesis generates requests for every operation from the document and runs its
default checks on each answer: no 5xx, documented status codes and content types,
bodies that match the response schemas, invalid input rejected, valid input accepted.
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sqlalchemy import Column, Table, insert, select

from backend.extensions import db
from backend.features.accounts import tokens
from backend.features.accounts.password_reset import fingerprint
from backend.features.users.models import User
from tests.conftest import AUTH_KEY

# A value of each column type, for rows that requests only need to exist.
PLACEHOLDERS = {
    str: "x",
    int: 1,
    float: 1.0,
    Decimal: Decimal(1),
    bool: False,
    date: date(2024, 5, 17),
    datetime: datetime(2024, 5, 17, tzinfo=UTC),
    bytes: b"",
}


@pytest.fixture(params=["apiKey", "bearerAuth"])
def api_schema(request, app, make_member):
    """Once as a service with the default key, once as a signed-in admin.

    Knowing the credential, schemathesis also sends requests without it and expects 401.
    """
    if request.param == "apiKey":
        auth = {"apiKey": {"api_key": AUTH_KEY}}
    else:
        _, headers = make_member("admin")
        auth = {"bearerAuth": {"bearer": headers["Authorization"].removeprefix("Bearer ")}}
    config = SchemathesisConfig.from_dict({"auth": {"openapi": auth}})
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)


@pytest.fixture
def existing_row_id(app):
    """The id of a row of a table: made once, and again when a request has deleted it."""
    made = {}

    def existing(table: Table) -> int:
        with app.app_context():
            key = table.c.id
            if made.get(table.name) is None or not db.session.scalar(
                select(key).where(key == made[table.name])
            ):
                made[table.name] = insert_row(table, existing)
        return made[table.name]

    return existing


def insert_row(table: Table, existing) -> int:
    values = {
        column.key: existing(referenced_table(column))
        if column.foreign_keys
        else placeholder(column)
        for column in table.columns
        if not (column.primary_key or column.nullable or column.default or column.server_default)
    }
    row_id = db.session.scalar(insert(table).values(values).returning(table.c.id))
    db.session.commit()
    return row_id


def placeholder(column: Column) -> object:
    return PLACEHOLDERS[column.type.python_type]


def referenced_table(column: Column) -> Table:
    (foreign_key,) = column.foreign_keys
    return foreign_key.column.table


def foreign_keys(path: str) -> dict[str, Table]:
    """The body fields of the path's resource that name a row of another table."""
    for segment in reversed(path.split("/")):
        table = db.metadata.tables.get(segment)
        if table is not None:
            return {
                column.key: referenced_table(column) for column in table.c if column.foreign_keys
            }
    return {}


def issued_reset_token(app, existing_row_id) -> str:
    with app.app_context():
        user = db.session.get(User, existing_row_id(User.__table__))
        return tokens.issue(tokens.PASSWORD_RESET, user.id, 60, pwd=fingerprint(user))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_keeps_to_its_document(case, existing_row_id, app):
    if case.meta.generation.mode.is_positive and isinstance(case.body, dict):
        # Nor that a reset token must be one the app mailed.
        if case.operation.path.endswith("/password-reset/confirm") and "token" in case.body:
            case.body["token"] = issued_reset_token(app, existing_row_id)
        # The document cannot say that an id must name an existing row: valid requests
        # name one, of the table the model's foreign key points to. Nor that an API
        # client must name one that a signed-in user may leave out (their own id).
        for field, table in foreign_keys(case.operation.path).items():
            if case.body.get(field) is not None or (
                case.method == "POST" and field not in case.body
            ):
                case.body[field] = existing_row_id(table)
    case.call_and_validate()
