"""Outgoing mail: the backends MAIL_URL picks, and delivery that never holds up a request.

SMTP is tested against a real server on 127.0.0.1 (aiosmtpd), with TLS and logins.
"""

import logging
import os
import shutil
import socket
import ssl
import subprocess
import time
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from backend.config_loading import ConfigError
from backend.mail import flush, outbox, send_mail, sending
from tests.conftest import PRODUCTION

BODY = "Reset your password: https://app.example.com/reset?token=secret-token"


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch):
    monkeypatch.setattr(sending, "RETRY_DELAY", 0)


def send(app, to="ann@example.com", subject="Reset your password", text=BODY):
    with app.test_request_context():
        send_mail(to, subject, text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Received:
    """An aiosmtpd handler that keeps what arrives, and how it arrived."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd calls it so
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "message": message_from_bytes(
                    envelope.content.replace(b"\r\n", b"\n"), policy=policy.default
                ),
                "login": session.auth_data and session.auth_data.login,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
            }
        )
        return "250 OK"


class RefusingRecipients(Received):
    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        return f"550 5.1.1 <{address}>: no such user"


@pytest.fixture
def smtp_server():
    """Starts a real SMTP server on 127.0.0.1; returns (received, port)."""
    controllers = []

    def start(received=None, **smtp_options):
        received, port = received or Received(), free_port()
        controller = Controller(received, hostname="127.0.0.1", port=port, **smtp_options)
        controller.start()
        controllers.append(controller)
        return received, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1: (cert file, server context)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def mail_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("backend.mail")]


def test_memory_collects_messages(make_app):
    app = make_app(MAIL_URL="memory://", MAIL_FROM="Shop <shop@example.com>")
    send(app, to="Ann <ann@example.com>", subject="Welcome", text="Hello Ann")
    flush()

    [message] = outbox(app)
    assert message["To"] == "Ann <ann@example.com>"
    assert message["From"] == "Shop <shop@example.com>"
    assert message["Subject"] == "Welcome"
    assert message.get_content() == "Hello Ann\n"
    assert message["Message-ID"].endswith("@example.com>")


def test_outbox_needs_the_memory_backend(make_app):
    app = make_app(MAIL_URL="log://")
    with pytest.raises(RuntimeError, match="memory://"):
        outbox(app)


@pytest.mark.parametrize(
    "config",
    [{"ENVIRONMENT": "development", "MAIL_URL": None}, {"MAIL_URL": "log://"}],
    ids=["development-default", "log-url"],
)
def test_development_backend_writes_eml_files_and_logs(make_app, tmp_path, caplog, config):
    app = make_app(**config, MAIL_FOLDER=str(tmp_path / "mail"))
    with caplog.at_level(logging.INFO):
        send(app)
        flush()

    [eml] = (tmp_path / "mail").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Reset your password"
    assert message.get_content() == BODY + "\n"
    [line] = mail_lines(caplog)
    assert all(part in line for part in ("ann@example.com", "Reset your password", BODY))


def test_production_refuses_the_log_backend(make_app):
    with pytest.raises(ConfigError, match="MAIL_URL log://"):
        make_app(**PRODUCTION, MAIL_URL="log://")


def test_production_without_mail_url_warns_once_and_drops_without_the_body(make_app, caplog):
    with caplog.at_level(logging.INFO):
        app = make_app(**PRODUCTION, MAIL_URL=None)
        assert mail_lines(caplog) == [
            "MAIL_URL is not set: mail is not sent, each message is dropped."
        ]
        caplog.clear()
        send(app)
        flush()

    assert mail_lines(caplog) == [
        "Mail 'Reset your password' to @example.com dropped: MAIL_URL is not set."
    ]
    assert "secret-token" not in caplog.text


def test_smtp_delivers_to_the_server(make_app, smtp_server):
    received, port = smtp_server()
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{port}", MAIL_FROM="Shop <shop@example.com>")
    send(app)
    flush()

    [arrived] = received.messages
    assert arrived["from"] == "shop@example.com"
    assert arrived["to"] == ["ann@example.com"]
    assert arrived["message"]["Subject"] == "Reset your password"
    assert arrived["message"].get_content() == BODY + "\n"


def login_as(user: bytes, password: bytes):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if auth_data == LoginPassword(user, password):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535

    return authenticator


def test_smtp_logs_in_with_the_url_credentials(make_app, smtp_server):
    received, port = smtp_server(
        authenticator=login_as(b"mailer", b"p@ss:word"), auth_require_tls=False
    )
    app = make_app(MAIL_URL=f"smtp://mailer:p%40ss%3Aword@127.0.0.1:{port}")
    send(app)
    flush()

    [arrived] = received.messages
    assert arrived["login"] == b"mailer"


def test_smtp_with_wrong_credentials_logs_an_error(make_app, smtp_server, caplog):
    received, port = smtp_server(
        authenticator=login_as(b"mailer", b"right"), auth_require_tls=False
    )
    app = make_app(MAIL_URL=f"smtp://mailer:wrong@127.0.0.1:{port}", MAIL_SEND_ATTEMPTS=1)
    send(app)
    flush()

    assert received.messages == []
    assert mail_lines(caplog) == [
        "Mail 'Reset your password' to @example.com not sent: attempt 1 of 1 failed "
        "(SMTPAuthenticationError 535); giving up."
    ]


def test_a_refused_recipient_is_logged_without_the_address(make_app, smtp_server, caplog):
    received, port = smtp_server(RefusingRecipients())
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{port}", MAIL_SEND_ATTEMPTS=1)
    send(app)
    flush()

    assert received.messages == []
    [line] = mail_lines(caplog)
    assert "SMTPRecipientsRefused" in line
    assert "ann@" not in line


@pytest.mark.parametrize(
    ("scheme", "query", "tls_option"),
    [
        ("smtp+starttls", "", "tls_context"),
        ("smtp", "?starttls=true", "tls_context"),
        ("smtps", "", "ssl_context"),
    ],
)
def test_smtp_over_tls_trusts_the_configured_ca(
    make_app, smtp_server, certificate, scheme, query, tls_option
):
    cert, server_context = certificate
    options = {tls_option: server_context}
    if tls_option == "tls_context":
        options["require_starttls"] = True
    received, port = smtp_server(**options)
    url = f"{scheme}://127.0.0.1:{port}{query}"
    app = make_app(MAIL_URL=url, MAIL_TLS_CA_FILE=str(cert))
    send(app)
    flush()

    [arrived] = received.messages
    assert arrived["tls"]
    assert arrived["message"].get_content() == BODY + "\n"


def test_smtp_over_tls_refuses_an_untrusted_certificate(make_app, smtp_server, certificate, caplog):
    _, server_context = certificate
    received, port = smtp_server(tls_context=server_context)
    app = make_app(MAIL_URL=f"smtp+starttls://127.0.0.1:{port}", MAIL_SEND_ATTEMPTS=1)
    send(app)
    flush()

    assert received.messages == []
    [line] = mail_lines(caplog)
    assert "SSLCertVerificationError" in line


def test_a_server_that_is_down_is_tried_again_then_logged(make_app, caplog):
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{free_port()}", MAIL_SEND_ATTEMPTS=3)
    started = time.monotonic()
    send(app)
    assert time.monotonic() - started < 1
    flush()

    records = [r for r in caplog.records if r.name.startswith("backend.mail")]
    assert [r.levelname for r in records] == ["WARNING", "WARNING", "ERROR"]
    assert (
        records[-1]
        .getMessage()
        .startswith(
            "Mail 'Reset your password' to @example.com not sent: attempt 3 of 3 failed "
            "(ConnectionRefusedError"
        )
    )
    assert records[-1].exc_info is None
    assert "secret-token" not in caplog.text


def test_send_mail_returns_at_once_while_the_server_does_not_answer(make_app, caplog):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        app = make_app(MAIL_URL=f"smtp://127.0.0.1:{port}", MAIL_TIMEOUT=1, MAIL_SEND_ATTEMPTS=1)
        started = time.monotonic()
        send(app)
        assert time.monotonic() - started < 0.5
        flush()

    [line] = mail_lines(caplog)
    assert "timed out" in line


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork, as gunicorn does")
def test_a_forked_worker_sends_with_its_own_thread(make_app):
    app = make_app(MAIL_URL="memory://")
    send(app)
    flush()  # the parent's sender thread is running now

    child = os.fork()
    if child == 0:
        try:
            send(app, subject="From the worker")
            flush(timeout=5)
            os._exit(0 if outbox(app)[-1]["Subject"] == "From the worker" else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://mailer:hunter2@mail.example.com",
        "smtp://mailer:hunter2@",
        "smtp://mailer:hunter2@mail.example.com:port",
        "mailer:hunter2@mail.example.com",
    ],
)
def test_a_bad_mail_url_is_a_config_error_without_the_password(make_app, url):
    with pytest.raises(ConfigError) as error:
        make_app(MAIL_URL=url)
    assert "MAIL_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_an_unreadable_ca_file_is_a_config_error(make_app, tmp_path):
    with pytest.raises(ConfigError, match="MAIL_TLS_CA_FILE"):
        make_app(MAIL_URL="smtps://mail.example.com", MAIL_TLS_CA_FILE=str(tmp_path / "no.pem"))
