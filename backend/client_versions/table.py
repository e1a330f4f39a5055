"""Version syntax, and the copy of the table each worker keeps so that a request costs no query."""

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from time import monotonic

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from werkzeug.http import http_date

from backend.client_versions.models import DEPRECATED, ClientVersion
from backend.errors import database_problem
from backend.extensions import db

logger = logging.getLogger(__name__)

Version = tuple[int, ...]

# 1 to 4 numbers of ASCII digits, 32 characters at most: "2", "1.2", "1.2.3", "1.2.3.4567".
SYNTAX = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,3}")
MAX_LENGTH = 32
SYNTAX_HELP = "1 to 4 numbers separated by dots, such as 1.2 or 1.2.3"


def parse_version(text: str) -> Version | None:
    if len(text) > MAX_LENGTH or not SYNTAX.fullmatch(text):
        return None
    return tuple(int(number) for number in text.split("."))


def version_text(version: Version) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Status:
    name: str
    # Deprecation (RFC 9745: "@" and seconds since the epoch) and Sunset (RFC 8594:
    # an HTTP-date), made once per read of the table rather than per response.
    headers: tuple[tuple[str, str], ...] = ()


def status_of(name: str, sunset: date | None, changed_at: datetime) -> Status:
    if name != DEPRECATED:
        return Status(name)
    if changed_at.tzinfo is None:  # SQLite returns the stored UTC time without its zone
        changed_at = changed_at.replace(tzinfo=UTC)
    headers = [("Deprecation", f"@{int(changed_at.timestamp())}")]
    if sunset is not None:
        headers.append(("Sunset", http_date(sunset)))
    return Status(name, tuple(headers))


class VersionTable:
    """The whole table, read again at most every `refresh_seconds`: a change made from
    any process is applied by every worker within that time, with no Redis and no
    query per request.

    While the database cannot be read, the last table read stays in force (nothing at
    all before the first read: every version is served), with one warning in the log.
    """

    def __init__(self, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        self._statuses: dict[Version, Status] = {}
        self._read_at: float | None = None
        self._reading = threading.Lock()
        self._failing = False

    def find(self, version: Version) -> Status | None:
        """The status of the longest listed version that `version` begins with."""
        if self._read_at is None or monotonic() - self._read_at >= self.refresh_seconds:
            self._refresh()
        statuses = self._statuses
        for length in range(len(version), 0, -1):
            status = statuses.get(version[:length])
            if status is not None:
                return status
        return None

    def _refresh(self) -> None:
        # One thread reads; the others go on with the table they have, or wait for
        # the first one.
        if not self._reading.acquire(blocking=self._read_at is None):
            return
        if self._read_at is not None and monotonic() - self._read_at < self.refresh_seconds:
            self._reading.release()  # another thread read it while this one waited
            return
        try:
            self._statuses = self._read()
            if self._failing:
                logger.info("Client versions: read the table again.")
            self._failing = False
        except SQLAlchemyError as error:
            if not self._failing:
                problem = database_problem(error) if isinstance(error, DBAPIError) else error
                logger.warning(
                    "Client versions: cannot read the table (%s); the last read stays in "
                    "force until it can be read again.",
                    problem,
                )
            self._failing = True
        finally:
            self._read_at = monotonic()
            self._reading.release()

    def _read(self) -> dict[Version, Status]:
        # A connection of its own: the request's session and transaction are left alone.
        with db.engine.connect() as connection:
            rows = connection.execute(
                select(
                    ClientVersion.version,
                    ClientVersion.status,
                    ClientVersion.sunset,
                    ClientVersion.changed_at,
                )
            ).all()
        statuses = {}
        for text, name, sunset, changed_at in rows:
            version = parse_version(text)
            if version is not None:
                statuses[version] = status_of(name, sunset, changed_at)
        return statuses
