"""Strict HTTP at the server's own socket (issue 20, findings 3-7), replayed with raw sockets
against a real `bentoml serve`: what a front proxy would refuse, the server refuses on its own
(the pod network and `make serve` have no edge), with the OpenAI error body, a request id, a
metric by reason and one JSON log line.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.auth import hash_key
from tests.fixtures.http import metric_samples, metric_value
from tests.fixtures.servers import API_KEYS, RunningServer, server_env, serving

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 2
SECURITY_HEADERS = ("x-content-type-options", "cache-control", "content-security-policy")


@pytest.fixture(scope="module")
def strict(catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    log_path = tmp_path_factory.mktemp("strict") / "server.log"
    env = server_env(
        catalog_file,
        MODERATION_API_KEY_HASHES=hash_key(API_KEYS[0]),
        MODERATION_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
    )
    with serving(env, log_path) as running:
        yield running


def _connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 10)


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout otherwise)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }

    def error(self) -> dict[str, object]:
        return json.loads(self.body)["error"]


def _exchange(server: RunningServer, raw: bytes) -> tuple[Answer, bool]:
    """Send `raw`; the first answer, and whether the server then closed the connection."""
    with _connect(server) as connection:
        connection.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        answer = Answer(received)
        length = int(answer.headers.get("content-length", "0"))
        while len(answer.body) < length:
            answer.body += connection.recv(65536)
        connection.settimeout(3)
        try:
            closed = connection.recv(1) == b""
        except TimeoutError:
            closed = False
    return answer, closed


def _assert_refused(answer: Answer, status: int) -> None:
    """A refusal the server makes itself: OpenAI body, request id, security headers, close."""
    assert answer.status == status, (answer.status, answer.body[:300])
    assert set(answer.error()) == {"message", "type", "param", "code"}
    assert answer.headers["x-request-id"]
    assert answer.headers["connection"] == "close"
    assert all(name in answer.headers for name in SECURITY_HEADERS)


def _refused_count(server: RunningServer, reason: str) -> float:
    return metric_value(metric_samples(server), "moderation_refused_requests_total", reason=reason)


def _moderation_request(body: bytes, *headers: str, version: str = "1.1") -> bytes:
    lines = [
        f"POST /v1/moderations HTTP/{version}",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {API_KEYS[0]}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_deeply_nested_json_is_a_400_without_a_traceback(strict: RunningServer) -> None:
    """Finding 3: RecursionError escaped the parser: a 500 and ~260 traceback lines."""
    body = b'{"input":' + b"[" * 1000 + b"]" * 1000 + b"}"
    with strict.client() as client:
        answer = client.post("/v1/moderations", content=body)
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "Traceback" not in strict.logs()


def test_unfinished_request_headers_are_cut_off_after_the_header_timeout(
    strict: RunningServer,
) -> None:
    """Finding 4: half a request line or unfinished headers held a connection for ever."""
    before = _refused_count(strict, "header_timeout")
    with _connect(strict) as connection:
        connection.sendall(b"POST /v1/moderations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        answer = Answer(_read_until_closed(connection))
        waited = time.monotonic() - started
    assert HEADER_TIMEOUT_S - 0.5 < waited < HEADER_TIMEOUT_S + 3
    _assert_refused(answer, 408)
    assert _refused_count(strict, "header_timeout") == before + 1


def test_trickling_headers_does_not_restart_the_clock(strict: RunningServer) -> None:
    with _connect(strict) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /livez HTTP/1.1\r\n")
        with pytest.raises(OSError):  # the server closes while we still send
            for _ in range(20):
                time.sleep(0.5)
                connection.sendall(b"X-Slow: 1\r\n")
            _read_until_closed(connection)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_body_trickled_after_the_answer_is_cut_off(strict: RunningServer) -> None:
    """Finding 4: a body sent a byte at a time after a 401 kept its connection open."""
    with _connect(strict) as connection:
        connection.sendall(
            b"POST /v1/moderations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        received = connection.recv(65536)
        assert b" 401 " in received.split(b"\r\n", 1)[0]
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(20):
                time.sleep(0.5)
                connection.sendall(b" ")
            _read_until_closed(connection)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (
            _moderation_request(
                b'5\r\n{"inp\r\n0\r\n\r\n', "Content-Length: 5", "Transfer-Encoding: chunked"
            ),
            400,
            "ambiguous_framing",
        ),
        (
            _moderation_request(b"0\r\n\r\n", "Transfer-Encoding: chunked", version="1.0"),
            400,
            "ambiguous_framing",
        ),
        (b"GET /livez HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 505, "http_version"),
    ],
    ids=["content-length-and-chunked", "chunked-in-http-1.0", "http-9.9"],
)
def test_ambiguous_framing_and_unknown_versions_are_refused_and_the_connection_closed(
    strict: RunningServer, raw: bytes, status: int, reason: str
) -> None:
    """Finding 5 (RFC 9112 section 6.1): a front end framing by Content-Length and this server
    would disagree on where the next request starts."""
    before = _refused_count(strict, reason)
    answer, closed = _exchange(strict, raw)
    _assert_refused(answer, status)
    assert closed
    assert _refused_count(strict, reason) == before + 1


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        (
            "GET /livez HTTP/1.1\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(101)),
            431,
            "too_many_headers",
        ),
        ("GET /livez HTTP/1.1\r\nX-Big: " + "v" * 9000 + "\r\n", 431, "header_too_large"),
        (
            "GET /livez HTTP/1.1\r\n" + "".join(f"X-H{i}: {'v' * 700}\r\n" for i in range(60)),
            431,
            "head_too_large",
        ),
        ("GET /livez?" + "q" * 100_000 + " HTTP/1.1\r\n", 414, "url_too_long"),
    ],
    ids=["101-headers", "9-KB-header-line", "42-KB-of-headers", "100-KB-url"],
)
def test_oversized_request_heads_are_refused(
    strict: RunningServer, head: str, status: int, reason: str
) -> None:
    """Finding 6: 5,000 headers, a 64 KB header line and a 100,000-byte URL were accepted."""
    before = _refused_count(strict, reason)
    answer, closed = _exchange(strict, (head + "Host: 127.0.0.1\r\n\r\n").encode())
    _assert_refused(answer, status)
    assert closed
    assert _refused_count(strict, reason) == before + 1


def test_a_malformed_request_leaves_one_json_log_line_and_a_metric(strict: RunningServer) -> None:
    """Finding 7: two identical plain-text warnings and no metric."""
    before = _refused_count(strict, "malformed")
    marker = f"malformed-{time.monotonic_ns()}"
    answer, _ = _exchange(strict, f"GET /{marker} HTTP/1.1\r\nBad Header\r\n\r\n".encode())
    _assert_refused(answer, 400)
    assert _refused_count(strict, "malformed") == before + 1
    time.sleep(0.5)
    logs = strict.logs()
    assert "Invalid HTTP request received" not in logs
    refusals = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{")
        and json.loads(line).get("request_id") == answer.headers["x-request-id"]
    ]
    assert len(refusals) == 1
    assert refusals[0]["reason"] == "malformed" and refusals[0]["httpRequest"]["status"] == 400


def test_a_websocket_upgrade_is_answered_like_any_request(strict: RunningServer) -> None:
    """Finding 7: an upgrade got a bare 403, no security headers, no request id, no log line."""
    upgrade = (
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    answer, _ = _exchange(strict, upgrade.encode())
    assert answer.status == 401, answer.body[:300]  # the API's own answer: no key was sent
    assert answer.headers["x-request-id"]
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    time.sleep(0.5)
    assert answer.headers["x-request-id"] in strict.logs()


def test_a_flood_of_keyless_requests_does_not_buy_a_log_line_each(strict: RunningServer) -> None:
    """Finding 6: each keyless 401 cost a log line; beyond 10 a second (the default of
    MODERATION_CLIENT_ERROR_LINES_PER_S) they are counted."""
    marker = uuid.uuid4().hex
    started = time.monotonic()
    with strict.client(api_key=None) as client:
        for _ in range(60):
            assert client.get(f"/v1/{marker}").status_code == 401
    elapsed_s = time.monotonic() - started
    time.sleep(0.5)
    logged = [json.loads(line) for line in strict.logs().splitlines() if marker in line]
    assert len(logged) <= 10 * (int(elapsed_s) + 2)
    assert len(logged) < 60
