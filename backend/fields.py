"""Marshmallow fields shared by the features' schemas."""

import decimal
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from marshmallow import ValidationError, fields

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

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        # Kept in UTC: SQLite would store the client's local time and drop its offset.
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            raise ValidationError("Give the time's offset, like 2024-05-17T12:30:00+00:00.")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Not a time in the years 1 to 9999 in UTC.") from None


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


class JSONInteger(fields.Integer):
    """A JSON integer, as JSON Schema counts them: 3 and 3.0, never "3", 3.5 or true.

    marshmallow's Integer reads "3" and cuts 3.5 to 3; with strict=True it refuses 3.0.
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JSONDecimal(fields.Decimal):
    """A JSON number, read as an exact Decimal and written back as a number.

    marshmallow's Decimal also reads strings ("1_0", " 12 "), and writes a Decimal that
    Flask's encoder turns into a string. A float holds the 15 significant digits of a
    Numeric(12, 2) column exactly, so clients read back the stored value.
    """

    def _validated(self, value: Any) -> decimal.Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)

    # Any: marshmallow's Number says a Decimal field writes a str or a Decimal.
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        number = super()._serialize(value, attr, obj, **kwargs)
        return None if number is None else float(number)


class JSONBoolean(fields.Boolean):
    """true or false; marshmallow's Boolean also reads 1, "yes", "on" and more."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class SettingChoice(fields.String):
    """One of the values listed in a setting, e.g. SettingChoice("ROLES"): the list can
    change in config, and the OpenAPI document lists the app's values as its enum."""

    def __init__(self, setting: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.setting = setting

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        choice = super()._deserialize(value, attr, data, **kwargs)
        choices = current_app.config[self.setting]
        if choice not in choices:
            raise ValidationError(f"Must be one of: {', '.join(choices)}.")
        return choice
