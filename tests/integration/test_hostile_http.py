"""Hostile requests over real sockets to gunicorn: a clear JSON 4xx each, nothing stored harmed."""

import json
import socket

import pytest

from tests.integration.servers import AUTH_HEADER, AUTH_KEY, call

pytestmark = pytest.mark.integration


def raw_request(server, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are, so that broken framing reaches the server unrepaired."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, payload


def post_head(path: str, framing: str) -> str:
    return (
        f"POST {path} HTTP/1.1\nHost: test\n{AUTH_HEADER}: {AUTH_KEY}\n"
        f"Content-Type: application/json\n{framing}\nConnection: close\n"
    )


def chunked(data: bytes, size: int = 65536) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_hostile_requests_get_json_4xx_and_stored_data_stays(database_url, start_gunicorn):
    server = start_gunicorn(workers=2, DATABASE_URL=database_url)
    users = server.url + "/api/v1/users"
    body = {"email": "ada@example.com", "name": "Ada", "password": "correct horse"}
    status, ada, _ = call(users, "POST", body)
    assert status == 201

    for name in ("a\x00b", "a\ud800b"):
        answer = call(f"{users}/{ada['id']}", "PATCH", {"name": name})
        assert answer[0] == 400 and list(answer[1]["errors"]) == ["name"], answer

    deep = b"[" * 100_000
    answers = {
        "deep JSON": raw_request(
            server, post_head("/api/v1/users", f"Content-Length: {len(deep)}"), deep
        ),
        "chunked over the limit": raw_request(
            server,
            post_head("/api/v1/users", "Transfer-Encoding: chunked"),
            chunked(json.dumps({"name": "x" * 1_100_000}).encode()),
        ),
        "broken chunk size": raw_request(
            server,
            post_head("/api/v1/users", "Transfer-Encoding: chunked"),
            b"zz\r\nabc\r\n0\r\n\r\n",
        ),
        "broken chunk end": raw_request(
            server,
            post_head("/api/v1/users", "Transfer-Encoding: chunked"),
            b"5\r\nabc\r\n0\r\n\r\n",
        ),
        "doubled slash": raw_request(
            server, "GET /api//v1/users HTTP/1.1\nHost: evil.example\nConnection: close\n"
        ),
    }
    expected = {
        "deep JSON": 400,
        "chunked over the limit": 413,
        "broken chunk size": 400,
        "broken chunk end": 400,
        "doubled slash": 404,
    }
    for case, (status, headers, payload) in answers.items():
        assert status == expected[case], (case, status, payload[:200])
        assert headers["Content-Type"] == "application/json", case
        assert "message" in json.loads(payload), case
        assert "Location" not in headers, case

    status, headers, payload = raw_request(
        server, "OPTIONS /api/v1/users HTTP/1.1\nHost: test\nConnection: close\n"
    )
    assert (status, payload) == (204, b"") and "Content-Type" not in headers
    assert "GET" in headers["Allow"]

    assert call(f"{users}/{ada['id']}")[:2] == (200, ada)
    server.stop()
    assert "Traceback" not in server.stderr()
