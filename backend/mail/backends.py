"""Where a message goes. Each backend's `deliver` hands it on or raises OSError."""

import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class Backend(Protocol):
    def deliver(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpBackend:
    """smtp:// sends in plain text, smtp+starttls:// upgrades to TLS, smtps:// starts in TLS."""

    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    timeout: float
    tls: ssl.SSLContext | None

    def deliver(self, message: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.scheme == "smtp+starttls":
                smtp.starttls(context=self.tls)
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


class DevelopmentBackend:
    """Sends nothing: logs each message, body included, and keeps it as an .eml file that
    a mail client opens."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(bytes(message))
        logger.info(
            "Mail to %s, %r, not sent (development), kept in %s:\n%s",
            message["To"],
            str(message["Subject"]),
            path,
            message.get_content(),
        )


class MemoryBackend:
    """Keeps each message in `messages`, for tests to read with `outbox(app)`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def deliver(self, message: EmailMessage) -> None:
        self.messages.append(message)


class DroppingBackend:
    """No MAIL_URL outside development. The line logged leaves out the body, which may
    hold a password-reset link."""

    def deliver(self, message: EmailMessage) -> None:
        logger.warning("Mail %s dropped: MAIL_URL is not set.", described(message))


def described(message: EmailMessage) -> str:
    """The subject and the recipient's domain: enough to find a message, without the
    address, which is personal data, or the body, which may hold a secret."""
    domain = parseaddr(str(message["To"]))[1].rpartition("@")[2]
    return f"{str(message['Subject'])!r} to @{domain}"
