"""`flask scaffold`: field specs, every refusal, and what it writes into a project folder.

The command runs in-process on a copy of the project's files in tmp_path (its --root);
tests/integration/test_scaffold_end_to_end.py runs the code it generates. Resource names
and references are chosen from what the app has, so these tests keep passing in a project
that has scaffolded widgets or removed the example features.
"""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest

from backend.api import operations
from backend.app import FEATURES, import_features
from backend.extensions import Model, db
from backend.scaffold.cli import scaffold_command
from backend.scaffold.specs import (
    TEMPLATE_NAMES,
    Field,
    check_against_app,
    parse_field,
    parse_resource,
    snake_case,
)
from backend.scaffold.writer import plan, with_feature, write

REPOSITORY = Path(__file__).parent.parent
# The names of the resources generated here: the first ones the app does not have.
CANDIDATES = ("widgets", "gadgets", "gizmos", "sprockets", "doodads")
SCALARS = (
    "title:str",
    "code:str:12?",
    "description:text?",
    "count:int",
    "price:decimal",
    "done:bool",
    "due:date?",
    "starts_at:datetime",
)


def unused_names() -> list[str]:
    taken = {*db.metadata.tables, *FEATURES}
    return [name for name in CANDIDATES if name not in taken]


def feature_tables() -> list[str]:
    """The tables of the features' models, in the order of FEATURES."""
    import_features()  # their models are mapped once their handlers are imported
    modules = {
        f"backend.features.{feature}.models": order for order, feature in enumerate(FEATURES)
    }
    mappers = [mapper for mapper in Model.registry.mappers if mapper.class_.__module__ in modules]
    mappers.sort(key=lambda mapper: (modules[mapper.class_.__module__], mapper.class_.__name__))
    return [mapper.local_table.name for mapper in mappers]


@pytest.fixture
def name(app):
    return unused_names()[0]


@pytest.fixture
def every_type(app):
    """Every type of field, optional or not, and references to up to two feature tables:
    the first and the last feature's."""
    tables = feature_tables()
    references = [f"owner:fk={table}" for table in tables[:1]]
    references += [f"other:fk={table}?" for table in tables[1:][-1:]]
    return (*SCALARS, *references)


@pytest.fixture
def project(tmp_path):
    """A project folder to write into: the repository's backend, migrations and tests/conftest.py."""
    shutil.copytree(
        REPOSITORY / "backend", tmp_path / "backend", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPOSITORY / "migrations", tmp_path / "migrations")
    shutil.copy(REPOSITORY / "ruff.toml", tmp_path)
    (tmp_path / "tests" / "features").mkdir(parents=True)
    (tmp_path / "tests" / "__init__.py").write_text("")
    shutil.copy(REPOSITORY / "tests" / "conftest.py", tmp_path / "tests")
    return tmp_path


@pytest.fixture
def scaffold(app, project):
    """Runs the command on the project folder; its output and exit code as a click Result."""

    def run(*arguments):
        return app.test_cli_runner().invoke(
            scaffold_command, [*arguments, "--root", str(project)], catch_exceptions=False
        )

    return run


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def planned(name: str, fields: tuple[str, ...], project: Path) -> dict[Path, str]:
    return plan(check_against_app(parse_resource(name, fields)), project)


def ruff(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_the_command_is_registered(app):
    assert app.cli.commands.get("scaffold") is scaffold_command


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("title:str", Field("title", "str", length=200)),
        ("code:str:12?", Field("code", "str", optional=True, length=12)),
        ("description:text?", Field("description", "text", optional=True)),
        ("count:int", Field("count", "int")),
        ("price:decimal", Field("price", "decimal")),
        ("done:bool", Field("done", "bool")),
        ("due:date?", Field("due", "date", optional=True)),
        ("starts_at:datetime", Field("starts_at", "datetime")),
        ("owner:fk=users", Field("owner", "fk", table="users")),
        ("reviewer:fk=users?", Field("reviewer", "fk", optional=True, table="users")),
    ],
)
def test_field_specs(spec, field):
    assert parse_field(spec) == field


def test_a_foreign_key_field_is_a_column_named_after_it():
    assert parse_field("owner:fk=users").column == "owner_id"


def test_without_fields_a_resource_has_a_name_and_an_optional_description():
    resource = parse_resource("widgets", ())

    assert resource.fields == (
        Field("name", "str", length=200),
        Field("description", "text", optional=True),
    )


def test_names_derive_from_the_plural():
    resource = parse_resource("order_lines", ())

    assert (resource.singular, resource.model, resource.label) == (
        "order_line",
        "OrderLine",
        "order line",
    )
    assert resource.handlers == (
        "list_order_lines",
        "create_order_line",
        "get_order_line",
        "update_order_line",
        "delete_order_line",
    )
    assert resource.scopes == ("order_lines:read", "order_lines:write")


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("widgets", "widget"),
        ("categories", "category"),
        ("addresses", "address"),
        ("boxes", "box"),
        ("matches", "match"),
        ("wishes", "wish"),
        ("order_lines", "order_line"),
    ],
)
def test_singulars_follow_english_rules(plural, singular):
    assert parse_resource(plural, ()).singular == singular


def test_the_singular_can_be_given():
    resource = parse_resource("people", (), singular="person")

    assert (resource.singular, resource.model) == ("person", "Person")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Widgets"], "'Widgets' is not a lowercase snake_case name"),
        (["order__lines"], "'order__lines' is not a lowercase snake_case name"),
        (["2widgets"], "'2widgets' is not a lowercase snake_case name"),
        (["match"], "'match' is a Python keyword"),
        (["classes"], "--singular 'class' is a Python keyword"),
        (["types"], "'types' is the name of a standard library module"),
        (["data"], "Cannot tell the singular of 'data'"),
        (["status"], "Cannot tell the singular of 'status'"),
        (["sheep", "--singular", "sheep"], "The singular and NAME are both 'sheep'"),
        (["NAME", "--singular", "Widget"], "--singular 'Widget' is not a lowercase"),
        (["requests"], "variable 'request' would hide Python's or the generated code's"),
        (["filters"], "variable 'filter' would hide"),
        (["urls"], "variable 'url' would hide"),
        (["pages"], "schema 'PageSchema' would hide"),
        (["job_runs"], "The table 'job_runs' exists already"),
        (["job_run_copies", "--singular", "job_run"], "A model named 'JobRun' exists already"),
        (["NAME", "price:float"], "Field 'price:float': the type must be one of"),
        (["NAME", "price"], "Field 'price' is not name:type"),
        (["NAME", "name:text:20"], "Field 'name:text:20': the type must be one of"),
        (["NAME", "owner:fk"], "Field 'owner:fk': the type must be one of"),
        (["NAME", "count:int=users"], "Field 'count:int=users': the type must be one of"),
        (["NAME", "name:str:0"], "Field 'name:str:0': the length must be 1 to"),
        (["NAME", "name:str", "name:text"], "Field 'name' is given twice"),
        (["NAME", "owner:fk=users", "owner_id:int"], "Field 'owner_id' is given twice"),
        (["NAME", "id:int"], "Field 'id': every row has id, created_at, updated_at"),
        (["NAME", "updated_at:datetime"], "Field 'updated_at': every row has"),
        (["NAME", "class:str"], "Field name 'class' is a Python keyword"),
        (["NAME", "Title:str"], "Field name 'Title' is not lowercase snake_case"),
        (["NAME", "metadata:str"], "Field 'metadata' would hide a name"),
        (["NAME", "fields:str"], "Field 'fields' would hide a name"),
        (["NAME", "date:date"], "Field 'date' would hide a name"),
        (["NAME", "owner:fk=no_such_table"], "Field 'owner': there is no table 'no_such_table'"),
        (["NAME", "job:fk=job_runs"], "Field 'job': 'job_runs' is not the table of a feature"),
    ],
)
def test_refusals_name_the_problem_in_one_line_and_write_nothing(
    scaffold, project, name, arguments, message
):
    before = files_in(project)
    result = scaffold(*[name if argument == "NAME" else argument for argument in arguments])

    assert result.exit_code != 0
    assert message in result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert files_in(project) == before


@pytest.mark.parametrize("table", feature_tables())
def test_the_name_of_a_table_or_model_is_refused(scaffold, project, table):
    mapper = next(m for m in Model.registry.mappers if m.local_table.name == table)
    singular = snake_case(mapper.class_.__name__)

    assert f"The table '{table}' exists" in scaffold(table).output
    assert "A model named" in scaffold(f"{singular}_copies", "--singular", singular).output


def test_a_handler_name_already_registered_is_refused(scaffold, app):
    """A list handler of a hand-written feature (items' list_user_items, say) names no table."""
    handlers = [definition.func.__name__ for _, _, definition in operations()]
    plurals = [
        handler.removeprefix("list_")
        for handler in handlers
        if re.fullmatch(r"list_[a-z_]+s", handler)
        and handler.removeprefix("list_") not in db.metadata.tables
    ]
    if not plurals:
        pytest.skip("No list handler is named after something other than a table.")

    result = scaffold(plurals[0])

    assert f"A handler named 'list_{plurals[0]}' exists already" in result.output


def test_a_scope_already_declared_is_refused(make_app, project, name):
    app = make_app(SCHEDULER_API_SCOPE=f"{name}:read")
    result = app.test_cli_runner().invoke(scaffold_command, [name, "--root", str(project)])

    assert result.exit_code != 0
    assert f"The scope '{name}:read' is declared already" in result.output


@pytest.mark.parametrize(
    "existing", ["backend/features/NAME/models.py", "tests/features/test_NAME.py"]
)
def test_existing_files_are_refused(scaffold, project, name, existing):
    path = project / existing.replace("NAME", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    before = files_in(project)
    result = scaffold(name)

    assert result.exit_code != 0
    assert f"{path.parent if path.name == 'models.py' else path} already exists" in result.output
    assert files_in(project) == before


def test_a_name_already_in_features_is_refused(scaffold, project, name):
    app_py = project / "backend" / "app.py"
    app_py.write_text(with_feature(app_py.read_text(), name))
    before = files_in(project)
    result = scaffold(name)

    assert result.exit_code != 0
    assert f"'{name}' is already in FEATURES" in result.output
    assert files_in(project) == before


def test_features_on_one_line_are_refused_with_what_to_do(scaffold, project, name):
    app_py = project / "backend" / "app.py"
    source = app_py.read_text()
    start = source.index("FEATURES = (")
    end = source.index(")", start)
    app_py.write_text(source[:start] + 'FEATURES = ("users", "items"' + source[end:])
    before = files_in(project)
    result = scaffold(name)

    assert result.exit_code != 0
    assert f'add "{name}", to it by hand' in result.output
    assert files_in(project) == before


def test_a_feature_is_added_as_the_last_line_of_features_and_nothing_else_changes():
    source = 'X = 1\n\n# The features.\nFEATURES = (\n    "users",  # people\n    "items",\n)\n'

    assert with_feature(source, "widgets") == (
        'X = 1\n\n# The features.\nFEATURES = (\n    "users",  # people\n    "items",\n'
        '    "widgets",\n)\n'
    )


def test_scaffold_writes_the_feature_its_tests_and_its_features_line(scaffold, project, name):
    app_py = (project / "backend" / "app.py").read_text()
    result = scaffold(name, "title:str")

    assert result.exit_code == 0, result.output
    feature = project / "backend" / "features" / name
    written = ["__init__.py", "models.py", "schemas.py", "handlers.py"]
    assert sorted(path.name for path in feature.iterdir()) == sorted(written)
    assert (project / "tests" / "features" / f"test_{name}.py").is_file()
    assert (project / "backend" / "app.py").read_text() == with_feature(app_py, name)
    model = parse_resource(name, ()).model
    assert f'class {model}(Timestamps, Model):\n    __tablename__ = "{name}"' in (
        (feature / "models.py").read_text()
    )
    assert result.output.splitlines()[-2:] == [
        f'  flask db migrate -m "add {name}"     # then read the generated migration',
        "  flask openapi export -o docs/openapi.json",
    ]


def test_scaffold_says_to_upgrade_first_when_the_database_is_behind(make_app, project, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'development.db'}")
    runner = app.test_cli_runner()
    first, second = unused_names()[:2]

    behind = runner.invoke(scaffold_command, [first, "--root", str(project)])
    with app.app_context():
        flask_migrate.upgrade(directory=str(project / "migrations"))
    current = runner.invoke(scaffold_command, [second, "--root", str(project)])

    assert "  flask db upgrade" in behind.output.split("Next:")[1]
    assert "flask db upgrade" not in current.output


@pytest.mark.parametrize(
    ("resource", "fields"),
    [
        (None, ()),
        (None, ("EVERY_TYPE",)),
        ("customers", ("name:str", "note:str:40?", "owner:fk=FEATURE")),
        ("order_lines", ("quantity:int", "order:fk=FEATURE", "note:text?")),
        ("categories", ("name:str:80", "parent:fk=FEATURE?", "starts_at:datetime?")),
        # Without builders in tests/conftest.py, the tests store the rows they refer to.
        ("reviews", ("rating:int", "subject:fk=FEATURE", "NO_BUILDERS")),
    ],
)
def test_templates_give_code_that_ruff_passes_unchanged(
    app, project, name, every_type, resource, fields
):
    """Ruff's layout and rules for names of usual length, without the command's ruff pass."""
    if "NO_BUILDERS" in fields:
        (project / "tests" / "conftest.py").write_text("")
        fields = fields[:-1]
    resource = resource or name
    fields = every_type if fields == ("EVERY_TYPE",) else fields
    tables = feature_tables()
    if resource in db.metadata.tables or (not tables and "FEATURE" in "".join(fields)):
        pytest.skip(f"The app has {resource}, or no feature to refer to.")
    fields = tuple(spec.replace("FEATURE", tables[0] if tables else "") for spec in fields)
    with app.app_context():
        files = planned(resource, fields, project)
    write(files)
    paths = [str(path) for path in files if path.name != "app.py"]

    checked = ruff("check", *paths, cwd=project)
    formatted = ruff("format", "--diff", *paths, cwd=project)
    assert checked.returncode == 0, checked.stdout
    assert formatted.returncode == 0, formatted.stdout


def test_long_names_are_laid_out_by_ruff(scaffold, project):
    result = scaffold(
        "purchase_order_lines",
        "a_rather_long_field_name:str",
        "another_quite_long_field_name:text?",
        "the_day_this_line_is_due_to_ship:date?",
    )

    assert result.exit_code == 0, result.output
    assert ruff("format", "--check", ".", cwd=project).returncode == 0
    assert ruff("check", ".", cwd=project).returncode == 0


@pytest.mark.skipif(not feature_tables(), reason="No feature to refer to.")
def test_references_use_the_conftest_builder_or_store_a_row(app, project, name):
    table = feature_tables()[0]
    mapper = next(m for m in Model.registry.mappers if m.local_table.name == table)
    model, module = mapper.class_.__name__, mapper.class_.__module__
    builder = f"make_{snake_case(model)}"
    conftest = project / "tests" / "conftest.py"
    with app.app_context():
        conftest.write_text(f"def {builder}(client):\n    pass\n")
        with_builder = planned(name, ("ref:fk=" + table,), project)
        conftest.write_text("")
        without = planned(name, ("ref:fk=" + table,), project)
    tests = project / "tests" / "features" / f"test_{name}.py"
    handlers = project / "backend" / "features" / name / "handlers.py"

    assert f'"ref_id": {builder}()["id"],' in with_builder[tests]
    assert f'"ref_id": store(app, {model}(' in without[tests]
    assert f"from {module} import {model}\n" in without[tests]
    assert f"from {module} import {model}\n" in with_builder[handlers]
    assert ".handlers import" not in with_builder[handlers]


def test_template_names_list_every_name_the_generated_code_binds(app, project, name, every_type):
    """A resource named after one of them is refused, instead of hiding it."""
    with app.app_context():
        resource = check_against_app(parse_resource(name, every_type))
        files = plan(resource, project)
    own = {resource.name, resource.singular, resource.model}
    own |= {spec.name for spec in resource.fields} | {spec.column for spec in resource.fields}
    for reference in resource.references:  # a resource of the same name is refused
        own |= {reference.model, f"make_{snake_case(reference.model)}"}
    bound = set()
    for path, source in files.items():
        if path.name == "app.py":
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.alias):
                bound.add(node.asname or node.name)
    unlisted = {
        bound_name
        for bound_name in bound - TEMPLATE_NAMES - own
        if not bound_name.startswith("__")
        and not any(part in bound_name for part in (resource.singular, resource.model))
        and not any(spec.name in bound_name for spec in resource.fields)
    }
    assert not unlisted, " ".join(sorted(unlisted))
