"""The versions of the client apps that have a status; any other version is served as supported."""

from datetime import date, datetime

from sqlalchemy import Date, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.database import utcnow
from backend.extensions import Model

SUPPORTED = "supported"
DEPRECATED = "deprecated"
UNSUPPORTED = "unsupported"
STATUSES = (SUPPORTED, DEPRECATED, UNSUPPORTED)


class ClientVersion(Model):
    __tablename__ = "client_versions"

    # Normalized: "1.2", never "01.2". It covers every version it begins: 1.2.x too.
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    # The day a deprecated version stops being served (the Sunset header).
    sunset: Mapped[date | None] = mapped_column(Date)
    # When the status last changed: for a deprecated version, the Deprecation header.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
