"""Every request has an id: kept from X-Request-ID when well-formed, returned, logged on
every line the request writes, in every error body, and in the work it hands over."""

import logging
import re

import pytest

from backend.mail import flush, send_mail
from backend.request_ids import current_request_id
from tests.conftest import log_lines

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "incoming",
    ["4bf92f3577b34da6a3ce929d0e0e4736", "req-1", "a.b_c:d-E", "x" * 128],
)
def test_a_well_formed_incoming_id_is_kept_and_returned(client, incoming):
    response = client.get("/health", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["", "has space", "pipe|in", "x" * 129, 'quote"d', "<script>", "naïve", "a,b"],
)
def test_a_malformed_or_oversized_id_is_replaced(client, incoming):
    response = client.get("/health", headers={"X-Request-ID": incoming})

    assert GENERATED.fullmatch(response.headers["X-Request-ID"])


def test_without_the_header_each_request_gets_a_new_id(client):
    ids = {client.get("/health").headers["X-Request-ID"] for _ in range(3)}

    assert len(ids) == 3
    assert all(GENERATED.fullmatch(request_id) for request_id in ids)


def test_every_error_body_carries_the_id(client, auth_headers):
    responses = [
        client.get("/nowhere", headers={"X-Request-ID": "e-404"}),
        client.get("/api/v1/users", headers={"X-Request-ID": "e-401"}),
        client.post("/api/v1/users", json={}, headers={**auth_headers, "X-Request-ID": "e-400"}),
        client.delete("/health", headers={"X-Request-ID": "e-405"}),
    ]

    assert [(r.status_code, r.json["request_id"]) for r in responses] == [
        (404, "e-404"),
        (401, "e-401"),
        (400, "e-400"),
        (405, "e-405"),
    ]


def test_an_unexpected_error_gives_its_id_in_the_body_and_beside_the_traceback(logged_app):
    @logged_app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = logged_app.test_client().get("/boom", headers={"X-Request-ID": "trace-me"})

    assert (response.status_code, response.json["request_id"]) == (500, "trace-me")
    lines = [line for line in log_lines(logged_app) if "request_id=trace-me" in line]
    assert [line.split(" | ")[1] for line in lines] == ["ERROR", "INFO"]  # exception, request
    assert lines[0].split(" | ")[7] == "request_id=trace-me Unhandled exception"


def test_every_line_written_while_handling_the_request_carries_the_id(logged_app):
    @logged_app.get("/chatty")
    def chatty():
        logging.getLogger("backend.example").warning("first")
        logging.getLogger("backend.example").warning("second")
        return {}

    logged_app.test_client().get("/chatty", headers={"X-Request-ID": "chatty-1"})

    written = [line for line in log_lines(logged_app) if " | /chatty | " in line]
    assert len(written) == 3
    assert all(line.split(" | ")[7].startswith("request_id=chatty-1 ") for line in written)


def test_lines_outside_a_request_have_no_id_and_no_id_outlives_its_request(logged_app):
    logged_app.test_client().get("/health")
    logging.getLogger("backend.example").warning("after the request")

    assert current_request_id() is None
    assert log_lines(logged_app)[-1].endswith(" | - | after the request")


def test_mail_sent_by_a_request_is_delivered_under_its_id(make_app, tmp_path, monkeypatch):
    from backend.mail import sending

    monkeypatch.setattr(sending, "RETRY_DELAY", 0)
    # Nothing listens on port 9: every attempt fails, and each one logs a line.
    app = make_app(LOG_FILE=str(tmp_path / "app.log"), MAIL_URL="smtp://127.0.0.1:9")

    @app.get("/notify")
    def notify():
        send_mail("ada@example.com", "Hello", "Hi Ada")
        return {}

    app.test_client().get("/notify", headers={"X-Request-ID": "mail-1"})
    flush()

    delivery = [line for line in log_lines(app) if "backend.mail.sending" in line]
    assert len(delivery) == app.config["MAIL_SEND_ATTEMPTS"]
    assert all(line.split(" | ")[7].startswith("request_id=mail-1 Mail ") for line in delivery)
    # The sender thread forgets the id once it is done with the message.
    assert sending._executor().submit(current_request_id).result() is None


def test_the_header_name_is_a_setting(make_app):
    client = make_app(REQUEST_ID_HEADER="X-Correlation-ID").test_client()

    response = client.get("/health", headers={"X-Correlation-ID": "corr-7"})

    assert response.headers["X-Correlation-ID"] == "corr-7"
    assert "X-Request-ID" not in response.headers


def test_turned_off_there_is_no_id_anywhere(make_app):
    client = make_app(REQUEST_ID_HEADER=None).test_client()

    response = client.get("/nowhere", headers={"X-Request-ID": "ignored"})

    assert set(response.json) == {"message"}
    assert "X-Request-ID" not in response.headers
