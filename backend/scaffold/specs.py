"""What `flask scaffold` generates from: a resource's names and fields, parsed and checked.

NAME is the plural resource, lowercase snake_case (`widgets`, `order_lines`); every other
name derives from it. Each FIELD is `name:type`, and a trailing `?` makes it optional:

    title:str  title:str:100  description:text?  count:int  price:decimal
    done:bool  due:date?  starts_at:datetime  owner:fk=users  (column owner_id)

Everything is checked before anything is written; a problem is one line naming it.
"""

import builtins
import keyword
import re
import sys
from dataclasses import dataclass, field, replace

import click
from flask import current_app
from marshmallow import Schema

from backend.api import operations, registry
from backend.auth import declared_scopes
from backend.extensions import Model, db

IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
FIELD_SPEC = re.compile(
    r"(?P<name>[^:]+):(?P<type>[a-z]+)(?::(?P<length>[0-9]+)|=(?P<table>[^?]+))?(?P<optional>\?)?"
)
DEFAULT_FIELDS = ("name:str", "description:text?")
TYPES = ("str", "text", "int", "decimal", "bool", "date", "datetime", "fk")
TYPE_HELP = "str, str:LENGTH, text, int, decimal, bool, date, datetime or fk=TABLE"
STR_LENGTH = 200
# PostgreSQL's limit for varchar(n); longer text is a `text` field.
MAX_STR_LENGTH = 10_485_760
# Every generated model has these.
ROW_COLUMNS = ("id", "created_at", "updated_at")
# Words that end in s without being plurals: their singular is asked for.
NOT_PLURAL_ENDINGS = ("ss", "us", "is")

# Names the templates import or bind themselves. A name derived from NAME that equals one
# of them would hide it (a resource `requests` would make `request` a local variable in
# the handlers); tests/test_scaffold.py checks this list against the rendered files.
TEMPLATE_NAMES = frozenset(
    {
        # handlers.py
        "request", "errors", "get_validated_args", "get_validated_body", "messages",
        "select", "registry", "requires_scope", "delete_or_404", "with_errors", "db",
        "PageQuerySchema", "paginate", "body", "field", "value",
        # models.py and schemas.py
        "Any", "Schema", "fields", "validate", "Boolean", "Date", "DateTime", "Decimal",
        "ForeignKey", "Integer", "Numeric", "String", "Text", "Mapped", "mapped_column",
        "Timestamps", "Model", "UTCDateTime", "JSONInteger", "JSONDecimal", "JSONBoolean",
        "PageSchema", "MAX_ID", "MAX_INTEGER", "MAX_DECIMAL", "date", "datetime", "UTC", "self",
        "kwargs", "id", "created_at", "updated_at", "items",
        # the test file
        "pytest", "app", "client", "auth_headers", "make", "overrides", "response", "first",
        "second", "REPORTING_KEY", "store", "row", "url", "changes", "optional", "headers",
    }
)  # fmt: skip
# The lowercase ones a model or schema class body uses: a field of that name would hide them.
CLASS_BODY_NAMES = frozenset({"date", "datetime", "mapped_column", "fields", "validate"})


class ScaffoldError(click.ClickException):
    """Stops `flask scaffold` with one line on stderr and exit status 1, nothing written."""


@dataclass(frozen=True)
class Reference:
    """The table a foreign-key field points to, and the model that maps it."""

    table: str
    model: str  # class name: User
    module: str  # where it is defined: backend.features.users.models

    @property
    def label(self) -> str:
        return words(snake_case(self.model))


@dataclass(frozen=True)
class Field:
    """One FIELD of the command line."""

    name: str  # as given: `owner` for owner:fk=users
    type: str
    optional: bool = False
    length: int | None = None  # str only
    table: str | None = None  # fk only
    reference: Reference | None = None  # fk only, once checked against the app

    @property
    def column(self) -> str:
        """The attribute, column and JSON key: `owner_id` for owner:fk=users."""
        return f"{self.name}_id" if self.type == "fk" else self.name

    @property
    def label(self) -> str:
        return words(self.name)


@dataclass(frozen=True)
class Resource:
    """NAME and its FIELDs, with every name derived from them."""

    name: str  # plural: widgets, order_lines; also the table, tag and URL segment
    singular: str  # widget, order_line
    fields: tuple[Field, ...] = field(default=())

    @property
    def model(self) -> str:
        return "".join(part.capitalize() for part in self.singular.split("_"))

    @property
    def label(self) -> str:
        return words(self.singular)

    @property
    def label_plural(self) -> str:
        return words(self.name)

    @property
    def handlers(self) -> tuple[str, ...]:
        one, many = self.singular, self.name
        return (f"list_{many}", f"create_{one}", f"get_{one}", f"update_{one}", f"delete_{one}")

    @property
    def scopes(self) -> tuple[str, str]:
        return (f"{self.name}:read", f"{self.name}:write")

    @property
    def references(self) -> tuple[Reference, ...]:
        """The distinct models the fields point to, in field order."""
        found = [spec.reference for spec in self.fields if spec.reference is not None]
        return tuple(dict.fromkeys(found))


def words(name: str) -> str:
    return name.replace("_", " ")


def snake_case(class_name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


def singular_of(plural: str) -> str | None:
    """English rules for the last word, enough for most resource names; None if none applies."""
    if plural.endswith(NOT_PLURAL_ENDINGS):
        return None
    if plural.endswith("ies"):
        return plural[: -len("ies")] + "y"
    if plural.endswith(("sses", "xes", "ches", "shes")):
        return plural[: -len("es")]
    if plural.endswith("s"):
        return plural[: -len("s")]
    return None


def parse_resource(name: str, fields: tuple[str, ...], singular: str | None = None) -> Resource:
    """The resource the command line describes, or ScaffoldError naming the first problem."""
    check_identifier(name, "NAME")
    if name in sys.stdlib_module_names:
        raise ScaffoldError(f"{name!r} is the name of a standard library module; choose another.")
    if singular is None:
        singular = singular_of(name)
        if singular is None or singular == name:
            raise ScaffoldError(
                f"Cannot tell the singular of {name!r}: give it with --singular, "
                "and NAME in the plural."
            )
    check_identifier(singular, "--singular")
    if singular == name:
        raise ScaffoldError(f"The singular and NAME are both {name!r}; NAME is the plural.")
    resource = Resource(
        name, singular, tuple(parse_field(spec) for spec in fields or DEFAULT_FIELDS)
    )
    check_derived_names(resource)
    check_fields(resource.fields)
    return resource


def check_identifier(name: str, what: str) -> None:
    if not IDENTIFIER.fullmatch(name):
        raise ScaffoldError(
            f"{what} {name!r} is not a lowercase snake_case name (like widgets or order_lines)."
        )
    # A soft keyword (match, case) is a fine variable, but not a module name to import.
    if keyword.iskeyword(name) or (what == "NAME" and keyword.issoftkeyword(name)):
        raise ScaffoldError(f"{what} {name!r} is a Python keyword; choose another.")


def check_derived_names(resource: Resource) -> None:
    model = resource.model
    derived = {
        resource.singular: "variable",
        f"make_{resource.singular}": "test fixture",
        f"new_{resource.singular}": "test fixture",
        model: "model",
        f"{model}Schema": "schema",
        f"{model}PageSchema": "schema",
        f"Create{model}Schema": "schema",
        f"Update{model}Schema": "schema",
    }
    for name, role in derived.items():
        if name in TEMPLATE_NAMES or hasattr(builtins, name):
            raise ScaffoldError(
                f"The generated {role} {name!r} would hide Python's or the generated code's "
                f"{name!r}; pass --singular with another name."
            )


def parse_field(spec: str) -> Field:
    match = FIELD_SPEC.fullmatch(spec)
    if match is None:
        raise ScaffoldError(f"Field {spec!r} is not name:type, with type one of {TYPE_HELP}.")
    name, type_, length, table = match.group("name", "type", "length", "table")
    if type_ not in TYPES or (length and type_ != "str") or (table is None) != (type_ != "fk"):
        raise ScaffoldError(f"Field {spec!r}: the type must be one of {TYPE_HELP}.")
    if type_ == "str":
        size = int(length) if length else STR_LENGTH
        if not 1 <= size <= MAX_STR_LENGTH:
            raise ScaffoldError(f"Field {spec!r}: the length must be 1 to {MAX_STR_LENGTH}.")
        return Field(name, type_, bool(match["optional"]), length=size)
    return Field(name, type_, bool(match["optional"]), table=table)


def check_fields(specs: tuple[Field, ...]) -> None:
    # What a field would replace: attributes of every model and schema, names the classes use.
    taken = {*dir(Model), *dir(Schema()), *CLASS_BODY_NAMES}
    seen: set[str] = set()
    for spec in specs:
        if not IDENTIFIER.fullmatch(spec.name):
            raise ScaffoldError(f"Field name {spec.name!r} is not lowercase snake_case.")
        if keyword.iskeyword(spec.name):
            raise ScaffoldError(f"Field name {spec.name!r} is a Python keyword; choose another.")
        if spec.column in ROW_COLUMNS:
            raise ScaffoldError(
                f"Field {spec.column!r}: every row has {', '.join(ROW_COLUMNS)} already."
            )
        if spec.column in taken:
            raise ScaffoldError(
                f"Field {spec.column!r} would hide a name every model or schema has, or one "
                "the generated classes use; choose another (like due_date for date)."
            )
        if spec.column in seen:
            raise ScaffoldError(f"Field {spec.column!r} is given twice.")
        seen.add(spec.column)


def check_against_app(resource: Resource) -> Resource:
    """The resource with its references resolved, if nothing of it exists in the app yet."""
    if resource.name in db.metadata.tables:
        raise ScaffoldError(f"The table {resource.name!r} exists already.")
    for mapper in Model.registry.mappers:
        if mapper.class_.__name__ == resource.model:
            raise ScaffoldError(
                f"A model named {resource.model!r} exists already ({mapper.class_.__module__}); "
                "pass --singular with another name."
            )
    handlers = {definition.func.__name__ for _, _, definition in operations()}
    for handler in resource.handlers:
        if handler in handlers:
            raise ScaffoldError(f"A handler named {handler!r} exists already.")
    path = f"/{registry.prefix.strip('/')}/{resource.name}"
    if any(rule == path or rule.startswith(f"{path}/") for rule, _, _ in operations()):
        raise ScaffoldError(f"The API serves {path} already.")
    declared = declared_scopes(current_app)
    for scope in resource.scopes:
        if scope in declared:
            raise ScaffoldError(f"The scope {scope!r} is declared already.")
    return replace(resource, fields=tuple(with_reference(spec) for spec in resource.fields))


def with_reference(spec: Field) -> Field:
    if spec.table is None:
        return spec
    table = db.metadata.tables.get(spec.table)
    if table is None:
        raise ScaffoldError(
            f"Field {spec.name!r}: there is no table {spec.table!r}; "
            f"the tables are {', '.join(sorted(db.metadata.tables))}."
        )
    mapper = next((m for m in Model.registry.mappers if m.local_table is table), None)
    if mapper is None or not mapper.class_.__module__.startswith("backend.features."):
        raise ScaffoldError(f"Field {spec.name!r}: {spec.table!r} is not the table of a feature.")
    if [column.name for column in table.primary_key.columns] != ["id"]:
        raise ScaffoldError(f"Field {spec.name!r}: {spec.table!r} has no single `id` key.")
    reference = Reference(spec.table, mapper.class_.__name__, mapper.class_.__module__)
    return replace(spec, reference=reference)
