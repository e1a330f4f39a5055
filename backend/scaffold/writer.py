"""Renders the templates for a checked resource and writes its folder, test file and FEATURES line.

Everything is rendered, and every file checked to be new, before the first one is written.
"""

import ast
import functools
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Column, Table

from backend.api import registry
from backend.extensions import Model, db
from backend.scaffold.specs import Field, Resource, ScaffoldError, snake_case

TEMPLATES = Path(__file__).parent / "templates"
TEXT_LENGTH = 10_000
LINE_LENGTH = 100  # ruff.toml's
# How each bracket changes the depth, read from the end of a line.
BRACKETS = {")": 1, "]": 1, "}": 1, "(": -1, "[": -1, "{": -1}
# An id no test creates: ids start at 1 in every test's clean database.
MISSING_ID = 999

# What the tests send for each type: a valid value, another valid value, invalid ones.
SAMPLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "int": ("42", "7", ('"42"', "1.5", "2**31")),
    "decimal": ("1234.56", "0.5", ('"1234.56"', "10**10", "True")),
    "bool": ("True", "False", ('"true"', "1")),
    "date": ('"2024-05-17"', '"2025-01-31"', ('"2024-13-01"', "20240517")),
    "datetime": (
        '"2024-05-17T12:30:00+00:00"',
        '"2025-01-31T08:00:00+00:00"',
        ('"2024-05-17T12:30:00"', '"yesterday"'),
    ),
    "fk": ("", "", ('"1"', "0", "2**31")),
}
# SQLAlchemy's names for the column types of each FIELD type.
COLUMN_IMPORTS = {
    "str": "String",
    "text": "Text",
    "int": "Integer",
    "decimal": "Numeric",
    "bool": "Boolean",
    "date": "Date",
    "datetime": "DateTime",
    "fk": "ForeignKey",
}


@dataclass
class Needs:
    """What values in the test file need: fixtures, models and datetime names to import."""

    fixtures: list[str] = field(default_factory=list)
    models: set[tuple[str, str]] = field(default_factory=set)
    datetime_names: set[str] = field(default_factory=set)

    def add_fixture(self, name: str) -> None:
        if name not in self.fixtures:
            self.fixtures.append(name)


def plan(resource: Resource, root: Path) -> dict[Path, str]:
    """Every file to write under root, with its content: the new ones, and app.py changed."""
    app_py = root / "backend" / "app.py"
    if not app_py.is_file():
        raise ScaffoldError(f"No {app_py}: is {root} the project's folder?")
    feature = root / "backend" / "features" / resource.name
    tests = root / "tests" / "features" / f"test_{resource.name}.py"
    for path in (feature, tests):
        if path.exists():
            raise ScaffoldError(f"{path} already exists.")
    conftest = root / "tests" / "conftest.py"
    builders = conftest.read_text() if conftest.is_file() else ""
    return {
        feature / "__init__.py": "",
        feature / "models.py": render("models.py.jinja", model_context(resource)),
        feature / "schemas.py": render("schemas.py.jinja", schema_context(resource)),
        feature / "handlers.py": render("handlers.py.jinja", handler_context(resource)),
        tests: render("test.py.jinja", tests_context(resource, builders)),
        app_py: with_feature(app_py.read_text(), resource.name),
    }


def write(files: dict[Path, str]) -> None:
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def format_with_ruff(paths: Iterable[Path], root: Path) -> bool:
    """Lets ruff lay out what the templates could not (very long names); False without ruff.

    The templates already give ruff's layout for names of usual length.
    """
    if importlib.util.find_spec("ruff") is None:
        return False
    files = [str(path) for path in paths]
    for command in (["format", "--quiet"], ["check", "--fix", "--quiet", "--exit-zero"]):
        subprocess.run([sys.executable, "-m", "ruff", *command, *files], cwd=root, check=False)
    return True


def with_feature(source: str, name: str) -> str:
    """app.py's source with `name` added as the last line of its FEATURES tuple."""
    features = next(
        (
            node.value
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["FEATURES"]
        ),
        None,
    )
    lines = source.splitlines(keepends=True)
    if (
        not isinstance(features, ast.Tuple)
        or not features.elts
        or features.end_lineno is None
        or lines[features.end_lineno - 1].strip() != ")"
        or not all(isinstance(element, ast.Constant) for element in features.elts)
    ):
        raise ScaffoldError(
            "backend/app.py has no FEATURES = (...) tuple of names, one a line, ending with "
            f'a line ")"; add "{name}", to it by hand.'
        )
    if name in [element.value for element in features.elts if isinstance(element, ast.Constant)]:
        raise ScaffoldError(f"{name!r} is already in FEATURES (backend/app.py).")
    last = lines[features.elts[-1].lineno - 1]
    indent = last[: len(last) - len(last.lstrip())]
    lines.insert(features.end_lineno - 1, f'{indent}"{name}",\n')
    return "".join(lines)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["braced"] = lambda expression: "{" + expression + "}"
    env.filters["quoted"] = quoted
    return env


def render(template: str, context: dict[str, Any]) -> str:
    text = environment().get_template(template).render(context)
    return "".join(wrapped(line) for line in text.splitlines(keepends=True))


def wrapped(line: str) -> str:
    """A line that long names made too long, split as ruff splits it: inside the
    brackets of the call it ends with, the arguments on one line if they fit, else one a
    line. (The templates give no other kind of line that can grow past the limit.)"""
    code = line.rstrip("\n")
    end = code[-1] if code.endswith(("):", "),")) else ""
    if len(code) <= LINE_LENGTH or not code.removesuffix(end).endswith(")"):
        return line
    start, arguments = _last_call(code.removesuffix(end))
    indent = " " * (len(code) - len(code.lstrip()))
    inner = indent + " " * 4
    if len(inner + ", ".join(arguments)) <= LINE_LENGTH:
        body = inner + ", ".join(arguments) + "\n"
    else:
        body = "".join(f"{inner}{argument},\n" for argument in arguments)
    return f"{start}\n{body}{indent}){end}\n"


def _last_call(code: str) -> tuple[str, list[str]]:
    """`x = f(a, g(b))` as ("x = f(", ["a", "g(b)"]). The generated strings hold no
    escaped quote, and their brackets pair up."""
    depth, opening = 0, 0
    for index in range(len(code) - 1, -1, -1):
        depth += BRACKETS.get(code[index], 0)
        if depth == 0:
            opening = index
            break
    arguments, current, depth, quoted_text = [], "", 0, False
    for character in code[opening + 1 : -1]:
        quoted_text ^= character == '"'
        depth -= 0 if quoted_text else BRACKETS.get(character, 0)
        if character == "," and depth == 0 and not quoted_text:
            arguments.append(current.strip())
            current = ""
        else:
            current += character
    return code[: opening + 1], [*arguments, current.strip()]


def base_context(resource: Resource) -> dict[str, Any]:
    article = "an" if resource.label[0] in "aeiou" else "a"
    return {
        "name": resource.name,
        "singular": resource.singular,
        "model": resource.model,
        "label": resource.label,
        "a_label": f"{article} {resource.label}",
        "label_plural": resource.label_plural,
        "id": f"{resource.singular}_id",
        "fields": resource.fields,
        "references": resource.references,
        "types": {spec.type for spec in resource.fields},
    }


def model_context(resource: Resource) -> dict[str, Any]:
    types = {spec.type for spec in resource.fields}
    standard = []
    if times := sorted({"date", "datetime"} & types):
        standard.append(f"from datetime import {', '.join(times)}")
    if "decimal" in types:
        standard.append("from decimal import Decimal")
    third_party = [
        f"from sqlalchemy import {', '.join(sorted(COLUMN_IMPORTS[type_] for type_ in types))}",
        "from sqlalchemy.orm import Mapped, mapped_column",
    ]
    return {**base_context(resource), "import_groups": [g for g in (standard, third_party) if g]}


def schema_context(resource: Resource) -> dict[str, Any]:
    types = {spec.type for spec in resource.fields}
    # The app's own fields for these types (backend/fields.py).
    names = {"UTCDateTime"}
    if "int" in types or "fk" in types:
        names.add("JSONInteger")
    if "decimal" in types:
        names.add("JSONDecimal")
    if "bool" in types:
        names.add("JSONBoolean")
    return {
        **base_context(resource),
        "fields_imports": sorted(names),
        "text_length": TEXT_LENGTH,
    }


def handler_context(resource: Resource) -> dict[str, Any]:
    own = f"backend.features.{resource.name}"
    modules: dict[str, set[str]] = {
        f"{own}.models": {resource.model},
        f"{own}.schemas": {
            f"{resource.model}Schema",
            f"{resource.model}PageSchema",
            f"Create{resource.model}Schema",
            f"Update{resource.model}Schema",
        },
    }
    for reference in resource.references:
        modules.setdefault(reference.module, set()).add(reference.model)
    return {
        **base_context(resource),
        "feature_imports": [
            import_line(module, names) for module, names in sorted(modules.items())
        ],
    }


def import_line(module: str, names: Iterable[str]) -> str:
    ordered = sorted(names, key=str.lower)
    line = f"from {module} import {', '.join(ordered)}"
    if len(ordered) == 1 or len(line) <= LINE_LENGTH:
        return line
    return f"from {module} import (\n" + "".join(f"    {name},\n" for name in ordered) + ")"


def tests_context(resource: Resource, conftest: str) -> dict[str, Any]:
    body_needs, change_needs = Needs(), Needs()
    body = [(spec.column, sample(spec, body_needs, conftest)) for spec in resource.fields]
    changes = changes_for_update(resource, change_needs, conftest)
    invalid = [case for spec in resource.fields for case in invalid_values(spec)]
    first = resource.fields[0]
    models = body_needs.models | change_needs.models
    times = body_needs.datetime_names | change_needs.datetime_names
    standard = [f"from datetime import {', '.join(sorted(times))}"] if times else []
    first_party = ["from backend.extensions import db"] if models else []
    first_party += [import_line(module, [model]) for module, model in sorted(models)]
    first_party.append("from tests.conftest import REPORTING_KEY")
    return {
        **base_context(resource),
        "path": f"{api_prefix()}/{resource.name}",
        "missing_id": MISSING_ID,
        "standard_imports": standard,
        "first_party_imports": first_party,
        "store": bool(models),
        "new_fixtures": body_needs.fixtures,
        "body": body,
        "required": [spec.column for spec in resource.fields if not spec.optional],
        "optional": [spec.column for spec in resource.fields if spec.optional],
        "invalid": [*invalid, ('"id"', "5")],
        "changes": changes,
        "change_fixtures": change_needs.fixtures,
        "bad_change": invalid[0],
        "valid_change": (quoted(first.column), "1" if first.type == "fk" else valid(first)),
        "fk_tests": [fk_test(spec) for spec in resource.fields if spec.reference],
    }


def valid(spec: Field) -> str:
    if spec.type == "str":
        return quoted(fit(f"{article(spec.label)} {spec.label}", spec.length))
    if spec.type == "text":
        return quoted(f"Some {spec.label}")
    return SAMPLES[spec.type][0]


def other(spec: Field) -> str:
    if spec.type == "str":
        return quoted(fit(f"Another {spec.label}", spec.length, "y"))
    if spec.type == "text":
        return quoted(f"Other {spec.label}")
    return SAMPLES[spec.type][1]


def sample(spec: Field, needs: Needs, conftest: str) -> str:
    if spec.reference is None:
        return valid(spec)
    table = db.metadata.tables[spec.reference.table]
    return row_id(table, needs, conftest)


def changes_for_update(resource: Resource, needs: Needs, conftest: str) -> list[tuple[str, str]]:
    """A new value for the first field, and null for the first optional one."""
    first = resource.fields[0]
    if first.reference is None:
        changed = other(first)
    else:
        changed = row_id(db.metadata.tables[first.reference.table], needs, conftest)
    changes = [(first.column, changed)]
    optional = next((spec for spec in resource.fields if spec.optional), None)
    if optional is not None and optional is not first:
        changes.append((optional.column, "None"))
    return changes


def invalid_values(spec: Field) -> list[tuple[str, str]]:
    name = quoted(spec.column)
    if spec.type == "str":
        assert spec.length is not None
        values = ['""', f'"{spec.column[0]}" * {spec.length + 1}']
    elif spec.type == "text":
        values = [f'"{spec.column[0]}" * {TEXT_LENGTH + 1}', "1"]
    else:
        values = list(SAMPLES[spec.type][2])
    if not spec.optional:
        values.append("None")
    return [(name, value) for value in values]


def fk_test(spec: Field) -> dict[str, Any]:
    assert spec.reference is not None
    return {
        "column": spec.column,
        "name": spec.name,
        "label": spec.reference.label,
        "optional": spec.optional,
        "delete_path": delete_path(spec.reference.table),
    }


def delete_path(table: str) -> str | None:
    """The URL, before the id, that deletes a row of the table, if the API has one."""
    path = f"{api_prefix()}/{table}"
    for rule, methods in registry.paths.items():
        if "DELETE" in methods and re.fullmatch(rf"{path}/<[^/>]+>", rule):
            return path
    return None


def api_prefix() -> str:
    return "/" + registry.prefix.strip("/")


def article(label: str) -> str:
    return "An" if label[0] in "aeiou" else "A"


def quoted(text: str) -> str:
    """A string literal as ruff writes it; the names and labels here need no escaping."""
    return f'"{text}"'


def fit(text: str, length: int | None, filler: str = "x") -> str:
    return text if length is None or len(text) <= length else filler * length


def row_id(table: Table, needs: Needs, conftest: str, depth: int = 0) -> str:
    """Python for the id of a new row of the table: its builder's in tests/conftest.py if
    it has one (make_user), else a row stored through the ORM with sample values."""
    mapper = next(mapper for mapper in Model.registry.mappers if mapper.local_table is table)
    model = mapper.class_.__name__
    builder = f"make_{snake_case(model)}"
    if re.search(rf"^def {builder}\(", conftest, re.MULTILINE):
        needs.add_fixture(builder)
        return f'{builder}()["id"]'
    if depth > 3:
        raise ScaffoldError(f"The tests cannot build a row of {table.name}: its references nest.")
    needs.add_fixture("app")
    needs.models.add((mapper.class_.__module__, model))
    values = [
        f"{mapper.get_property_by_column(column).key}={column_value(column, needs, conftest, depth)}"
        for column in table.columns
        if not (column.primary_key or column.nullable or column.default or column.server_default)
    ]
    return f"store(app, {model}({', '.join(values)}))"


def column_value(column: Column, needs: Needs, conftest: str, depth: int) -> str:
    if column.foreign_keys:
        (key,) = column.foreign_keys
        return row_id(key.column.table, needs, conftest, depth + 1)
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = object
    if python_type is str:
        return quoted(column.name[: getattr(column.type, "length", None) or None])
    if python_type is bool:
        return "False"
    if python_type in (int, float, Decimal):
        return "1"
    if python_type is datetime:
        needs.datetime_names.update({"UTC", "datetime"})
        return "datetime(2024, 5, 17, tzinfo=UTC)"
    if python_type is date:
        needs.datetime_names.add("date")
        return "date(2024, 5, 17)"
    raise ScaffoldError(
        f"The tests cannot build a row of {column.table.name}: its column {column.name} is "
        f"{column.type}: give tests/conftest.py a builder for it, like make_user."
    )
