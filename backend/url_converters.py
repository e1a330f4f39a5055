"""Converters for path parameters, usable in routes as `<id:user_id>`."""

from werkzeug.routing import IntegerConverter, Map

# PostgreSQL's integer, the type of every primary key here.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """A database id, 1 to MAX_ID.

    A larger number is a 404 like any other unknown id, instead of an overflow
    error from the database; `to_swagger` documents the same range. Only ASCII
    digits match: werkzeug's `\\d` takes digits of every script.
    """

    regex = "[0-9]+"

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ID)

    @staticmethod
    def to_swagger() -> dict:
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
