"""Marshmallow fields shared by the features' schemas."""

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from marshmallow import fields

ASCII_INTEGER = re.compile(r"-?[0-9]+")


class UTCDateTime(fields.DateTime):
    """An ISO 8601 timestamp, always in UTC with its offset.

    SQLite hands back naive datetimes and PostgreSQL aware ones in the session's
    time zone; clients get the same shape from both.
    """

    def _serialize(
        self, value: datetime | None, attr: object, obj: object, **kwargs: object
    ) -> str | float | None:
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class Integer(fields.Integer):
    """An integer; as text (a query parameter), plain ASCII digits only.

    Python's int() also reads "1_0", " 10 " and digits of other scripts (Arabic-Indic, say).
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not ASCII_INTEGER.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Email(fields.Email):
    """An email address, stored lowercased, so that uniqueness ignores case.

    Validated after lowercasing, which can lengthen a value ("İ" becomes two
    characters): the limits hold for what is stored. Controls, format characters
    (bidi overrides, zero-width spaces) and spaces appear in no real address.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        address = super()._deserialize(value, attr, data, **kwargs).lower()
        if any(unicodedata.category(character)[0] in "CZ" for character in address):
            raise self.make_error("invalid")
        return address
