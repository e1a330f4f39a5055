"""Behind reverse proxies: the client's address comes from X-Forwarded-For, as far as
TRUSTED_PROXIES trusts it, and what keys on addresses (login limits, audit) follows."""

from sqlalchemy import select

from backend.extensions import db
from backend.features.audit.models import AuditEvent
from tests.conftest import PASSWORD

PROXY = {"REMOTE_ADDR": "10.0.0.2"}


def failed_login(client, forwarded_for: str | None, email: str = "nobody@example.com"):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": "not the password"},
        headers=headers,
        environ_base=PROXY,
    )


def recorded_addresses(app) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.ip).order_by(AuditEvent.id)))


def test_behind_one_proxy_the_forwarded_address_is_the_clients(make_app):
    app = make_app(TRUSTED_PROXIES=1)

    failed_login(app.test_client(), "203.0.113.9")

    assert recorded_addresses(app) == ["203.0.113.9"]


def test_a_client_cannot_pose_as_another_by_sending_the_header_itself(make_app):
    app = make_app(TRUSTED_PROXIES=1)

    # The proxy appends the address it saw; only the last one is trusted.
    failed_login(app.test_client(), "198.51.100.1, 203.0.113.9")

    assert recorded_addresses(app) == ["203.0.113.9"]


def test_without_trusted_proxies_the_header_is_ignored(make_app):
    app = make_app(TRUSTED_PROXIES=0)

    failed_login(app.test_client(), "203.0.113.9")

    assert recorded_addresses(app) == ["10.0.0.2"]


def test_behind_a_proxy_one_clients_failures_do_not_lock_out_the_others(make_app):
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    headers = {"X-AUTH-API-KEY": app.config["AUTH_KEY"]}
    body = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    client.post("/api/v1/users", json=body, headers=headers)
    for number in range(6):
        failed_login(client, "203.0.113.9", f"guess{number}@example.com")

    attacker = failed_login(client, "203.0.113.9", "another@example.com")
    ada = client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
        environ_base=PROXY,
    )

    assert attacker.status_code == 429
    assert ada.status_code == 200
