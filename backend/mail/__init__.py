"""Outgoing mail, delivered by a background thread: no request waits for the mail
server, or fails because of it.

    init_mail(app)                  in create_app: MAIL_URL picks the backend
    send_mail(to, subject, text)    in a request or app context; returns at once
    compose(...), send(message)     the same in two steps
    flush()                         waits for what was handed over (tests, shutdown)
    outbox(app)                     what memory:// delivered (tests)
"""

from email.message import EmailMessage

from flask import Flask

from backend.mail.backends import MemoryBackend
from backend.mail.mail_url import backend_for
from backend.mail.sending import compose, flush, send, send_mail

__all__ = ["compose", "flush", "init_mail", "outbox", "send", "send_mail"]


def init_mail(app: Flask) -> None:
    """Refuses, with a ConfigError, a MAIL_URL that is invalid or unsafe for the environment."""
    app.extensions["mail"] = backend_for(app)


def outbox(app: Flask) -> list[EmailMessage]:
    backend = app.extensions.get("mail")
    if not isinstance(backend, MemoryBackend):
        raise RuntimeError(
            f"outbox() reads the memory backend, but this app's is {type(backend).__name__}; "
            'set MAIL_URL="memory://".'
        )
    return backend.messages
