"""Extension instances, created unbound so that one object serves every app built.

`create_app` binds each of them with `init_app`. This module imports nothing from the
app, so any module can import it.
"""

from flask_caching import Cache
from flask_cors import CORS
from flask_migrate import Migrate
from flask_rebar import Rebar
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Predictable constraint names, so migrations can drop and alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model(DeclarativeBase):
    """The base of every model. Models subclass it rather than `db.Model`, which type
    checkers cannot see through; Flask-SQLAlchemy serves both the same way."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# What a handler committed stays readable without a query: a row that a racing request
# deletes right after the commit cannot turn a successful write into an error.
db = SQLAlchemy(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
cache = Cache()
cors = CORS()
rebar = Rebar()
# Errors carry {"message", ...} only; rebar would add its own code to some of them.
# None is rebar's documented way to leave the code out, but rebar infers `str` for it.
rebar.error_code_attr = None  # type: ignore[assignment]
