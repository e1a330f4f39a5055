"""Reads MAIL_URL, with MAIL_FOLDER, MAIL_TIMEOUT and MAIL_TLS_CA_FILE, into a backend."""

import logging
import ssl
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from flask import Flask

from backend.config_loading import ConfigError
from backend.mail.backends import (
    Backend,
    DevelopmentBackend,
    DroppingBackend,
    MemoryBackend,
    SmtpBackend,
)

logger = logging.getLogger(__name__)

SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
SCHEMES = (*SMTP_PORTS, "log", "memory")


def backend_for(app: Flask) -> Backend:
    config = app.config
    url = config["MAIL_URL"]
    # Relative paths are taken from the project root, as LOG_FILE is.
    root = Path(app.root_path).parent
    if not url:
        if config["ENVIRONMENT"] == "development":
            return DevelopmentBackend(root / config["MAIL_FOLDER"])
        logger.warning("MAIL_URL is not set: mail is not sent, each message is dropped.")
        return DroppingBackend()

    parts = _split(url)
    if parts.scheme == "memory":
        return MemoryBackend()
    if parts.scheme == "log":
        if config["ENVIRONMENT"] == "production":
            raise ConfigError(
                "Config error: MAIL_URL log:// writes whole messages, password-reset links "
                "included, to the log; production refuses it. Set an smtp:// URL."
            )
        return DevelopmentBackend(root / config["MAIL_FOLDER"])
    scheme = parts.scheme
    if scheme == "smtp" and parse_qs(parts.query).get("starttls", [""])[0] in ("true", "1"):
        scheme = "smtp+starttls"  # smtp://user:password@host:587?starttls=true
    tls = None if scheme == "smtp" else _tls_context(root, config["MAIL_TLS_CA_FILE"])
    if tls is None and parts.username and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        logger.warning(
            "MAIL_URL smtp:// logs in and sends reset links unencrypted; "
            "use smtp+starttls:// or smtps:// unless the network is yours."
        )
    return SmtpBackend(
        scheme=scheme,
        host=str(parts.hostname),
        port=parts.port or SMTP_PORTS[scheme],
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=config["MAIL_TIMEOUT"],
        tls=tls,
    )


def _split(url: str) -> SplitResult:
    # The messages never quote the URL: it may hold the server's password.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when the port is not a number
    except ValueError:
        raise ConfigError(
            "Config error: MAIL_URL is not a valid URL; special characters in the user "
            "or password must be percent-encoded."
        ) from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"Config error: MAIL_URL must start with {', '.join(s + '://' for s in SCHEMES)}."
        )
    if parts.scheme in SMTP_PORTS and not parts.hostname:
        raise ConfigError(
            "Config error: MAIL_URL names no host; "
            f"expected {parts.scheme}://user:password@host:port."
        )
    return parts


def _tls_context(root: Path, ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=root / ca_file if ca_file else None)
    except OSError as error:
        raise ConfigError(
            f"Config error: MAIL_TLS_CA_FILE {ca_file} is not a readable CA bundle: {error}."
        ) from None
