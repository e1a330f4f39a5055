"""Clients too slow to send their request, facing gunicorn with no proxy in front.

Each holds a thread of a worker (gunicorn.conf.py), not the worker, until its deadline
(half the `timeout`), and then gets a 408; every other client is answered meanwhile.
"""

import http.client
import select
import socket
import threading
import time

import pytest

from tests.integration.servers import AUTH_HEADER, AUTH_KEY

pytestmark = pytest.mark.integration

WORKERS = 4  # x 4 threads each: room for the slow clients and the others
TIMEOUT = 10  # so a slow client's deadline is 5 s
TRICKLING_HEADERS = 6
UNFINISHED_BODIES = 6
PROMPT = 1.0  # seconds an answer to another client may take


def trickle_headers(port: int, give_up_at: float) -> bytes:
    """Sends a request's headers one byte a second; returns the answer, or b"" if none."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        request = b"GET /health HTTP/1.1\r\nHost: a\r\nX-Padding: " + b"x" * 100
        for byte in request:
            if time.monotonic() > give_up_at:
                break
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break  # closed after answering; the answer may still be readable
            if select.select([connection], [], [], 1.0)[0]:
                break
        return read_answer(connection, give_up_at)


def send_unfinished_body(port: int, give_up_at: float) -> bytes:
    """Sends a tenth of the body it announces; returns the answer, or b"" if none."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(
            b"POST /api/v1/users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            + f"{AUTH_HEADER}: {AUTH_KEY}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"email": "slow@example.com", "name": "'
            + b"x" * 60
        )
        return read_answer(connection, give_up_at)


def read_answer(connection: socket.socket, give_up_at: float) -> bytes:
    answer = b""
    while time.monotonic() < give_up_at:
        connection.settimeout(max(give_up_at - time.monotonic(), 0.01))
        try:
            chunk = connection.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        answer += chunk
    return answer


def probe(port: int, path: str) -> tuple[int | str, float]:
    """(status or error, seconds) of one request from a client that is not slow."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        connection.request("GET", path, headers={AUTH_HEADER: AUTH_KEY})
        response = connection.getresponse()
        response.read()
        status: int | str = response.status
    except OSError as error:
        status = repr(error)
    finally:
        connection.close()
    return status, time.monotonic() - started


def test_slow_clients_get_408_while_others_are_answered_promptly(database_url, start_gunicorn):
    server = start_gunicorn(
        workers=WORKERS, DATABASE_URL=database_url, GUNICORN_CMD_ARGS=f"--timeout {TIMEOUT}"
    )
    deadline = TIMEOUT / 2
    started = time.monotonic()
    give_up_at = started + deadline + 4
    answers: dict[str, bytes] = {}

    def run(name: str, client) -> None:
        answers[name] = client(server.port, give_up_at)

    slow_clients = [
        threading.Thread(target=run, args=(f"headers{n}", trickle_headers), daemon=True)
        for n in range(TRICKLING_HEADERS)
    ] + [
        threading.Thread(target=run, args=(f"body{n}", send_unfinished_body), daemon=True)
        for n in range(UNFINISHED_BODIES)
    ]
    for client in slow_clients:
        client.start()
    time.sleep(0.5)

    # While every slow client is still connected, before its deadline.
    probes = []
    while time.monotonic() < started + deadline - 0.5 and len(probes) < 100:
        probes.append(probe(server.port, "/health"))
        probes.append(probe(server.port, "/api/v1/users?limit=1"))
        time.sleep(0.05)
    for client in slow_clients:
        client.join(timeout=max(give_up_at - time.monotonic(), 0) + 1)

    assert [status for status, _ in probes] == [200] * len(probes)
    assert max(seconds for _, seconds in probes) < PROMPT, probes
    assert len(probes) >= 10
    for name, answer in sorted(answers.items()):
        head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 408 "), (name, answer)
        assert "Content-Type: application/json" in head, (name, answer)
    assert len(answers) == TRICKLING_HEADERS + UNFINISHED_BODIES

    server.stop()
    output = server.stderr()
    assert "Traceback" not in output
    request_lines = [
        line.split(" | ")
        for line in server.log_file.read_text().splitlines()
        if line[:1].isdigit() and "backend.log_setup.log_request::" in line
    ]
    statuses = [(fields[3], fields[4], fields[6]) for fields in request_lines]
    assert statuses.count(("POST", "/api/v1/users", "408 REQUEST TIMEOUT")) == UNFINISHED_BODIES
    assert not [status for status in statuses if status[2].startswith("5")]
    assert output.count("not received within") == TRICKLING_HEADERS
