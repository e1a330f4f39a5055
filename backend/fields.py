"""Marshmallow fields shared by the features' schemas."""

from datetime import UTC, datetime

from marshmallow import fields


class UTCDateTime(fields.DateTime):
    """An ISO 8601 timestamp, always in UTC with its offset.

    SQLite hands back naive datetimes and PostgreSQL aware ones in the session's
    time zone; clients get the same shape from both.
    """

    def _serialize(self, value: datetime | None, attr: object, obj: object, **kwargs: object):  # noqa: ANN202
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)
