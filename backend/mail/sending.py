"""Hands each message to one background thread per process, which delivers it and retries."""

import logging
import os
import smtplib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import current_app

from backend.mail.backends import Backend, described
from backend.request_ids import carry

logger = logging.getLogger(__name__)

# Seconds before the second attempt, doubled before each one after it; tests set 0.
RETRY_DELAY = 1.0

# One sender per process. gunicorn forks workers after importing the app: a child
# inherits the parent's executor without its thread, and must start its own.
_sender: ThreadPoolExecutor | None = None
_sender_pid = 0
_sender_lock = threading.Lock()


def send_mail(to: str, subject: str, text: str) -> None:
    """Returns at once and never raises for the mail server: a password-reset request
    then answers in the same time whether the account exists or not, and a server that
    is down cannot turn it into a 500."""
    send(compose(to, subject, text))


def compose(to: str, subject: str, text: str) -> EmailMessage:
    """The message, not yet sent: code that must take as long whether or not it sends
    (a reset request for an unknown email) composes one all the same."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    # A domain given, or make_msgid looks up this host's name, which can take seconds.
    sender_domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=sender_domain or "localhost")
    message.set_content(text)
    return message


def send(message: EmailMessage) -> None:
    """Hands a composed message to this process's sender thread."""
    backend, attempts = current_app.extensions["mail"], current_app.config["MAIL_SEND_ATTEMPTS"]
    # The delivery's log lines carry the id of the request that sent the message.
    _executor().submit(carry(_deliver), backend, message, max(attempts, 1))


def flush(timeout: float = 10) -> None:
    """Waits until every message handed over so far in this process is delivered or
    given up; raises TimeoutError if that takes longer than `timeout` seconds."""
    # The one thread runs tasks in order: once this empty one has run, so have the others.
    _executor().submit(lambda: None).result(timeout)


def _executor() -> ThreadPoolExecutor:
    global _sender, _sender_pid
    with _sender_lock:
        if _sender is None or _sender_pid != os.getpid():
            _sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
            _sender_pid = os.getpid()
        return _sender


def _deliver(backend: Backend, message: EmailMessage, attempts: int) -> None:
    for attempt in range(1, attempts + 1):
        try:
            backend.deliver(message)
            return
        except OSError as error:  # smtplib's errors too: refused, timed out, TLS, 4xx, 5xx
            if attempt == attempts:
                logger.error(
                    "Mail %s not sent: attempt %d of %d failed (%s); giving up.",
                    described(message),
                    attempt,
                    attempts,
                    _reason(error),
                )
                return
            delay = RETRY_DELAY * 2 ** (attempt - 1)
            logger.warning(
                "Mail %s: attempt %d of %d failed (%s); trying again in %gs.",
                described(message),
                attempt,
                attempts,
                _reason(error),
                delay,
            )
            time.sleep(delay)
        except Exception:
            # Nobody reads this task's result: without this line a bug would pass unseen.
            logger.exception("Mail %s not sent: unexpected error.", described(message))
            return


def _reason(error: OSError) -> str:
    # The server's words, and smtplib's list of refused recipients, may hold an address.
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return type(error).__name__
    return f"{type(error).__name__}: {error}"
