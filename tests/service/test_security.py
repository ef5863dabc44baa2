"""Every attack of the API-surface review (issue 11) replayed against real `bentoml serve`
processes with API keys on; each test fails if its attack works again.

The session server has no per-key rate limit (other modules send thousands of requests); the
`limited` server of this module has one, a 1 s body deadline and a 2 MiB body limit.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.auth import hash_key
from service.normalize import normalize
from tests.fixtures.http import assert_openai_error, metric_samples
from tests.fixtures.servers import (
    API_KEYS,
    RunningServer,
    server_env,
    serving,
)

pytestmark = pytest.mark.slow

LIMITED_BURST = 100  # more than the other tests on that server send with API_KEYS[0]
BODY_TIMEOUT_S = 1
LARGE_BODY_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def limited(
    catalog_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with the per-key limit on (LIMITED_BURST requests at once, then 1 a minute), a
    BODY_TIMEOUT_S body deadline and the default 2 MiB body limit."""
    log_path = tmp_path_factory.mktemp("limited") / "server.log"
    env = server_env(
        catalog_file,
        MODERATION_API_KEY_HASHES=",".join(hash_key(key) for key in API_KEYS),
        MODERATION_KEY_REQUESTS_PER_MINUTE="1",
        MODERATION_KEY_BURST=str(LIMITED_BURST),
        MODERATION_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        MODERATION_MAX_BODY_BYTES=str(LARGE_BODY_BYTES),
    )
    with serving(env, log_path) as running:
        yield running


def requests_with_status(client: httpx.Client, pattern: str) -> float:
    return sum(
        sample.value
        for sample in metric_samples(client).get("moderation_requests_total", [])
        if re.fullmatch(pattern, sample.labels["status_code"])
    )


def raw_request(server: RunningServer, data: bytes, *, read: bool = True) -> bytes:
    """Send bytes on a fresh connection; the answer (until the server closes) when `read`."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(data)
        if not read:
            return b""
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def log_lines(server: RunningServer, marker: str) -> list[str]:
    """The server's log lines holding `marker`, waiting a little for the first one to be written
    (the line is written after the response is sent)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in server.logs().splitlines() if marker in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# --- 1. requests without a key cannot grow /metrics ------------------------------------------


def test_unknown_paths_and_methods_without_a_key_leave_metrics_flat(server: RunningServer) -> None:
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "FOO", "PROPFIND"]

    def attack(client: httpx.Client, count: int) -> None:
        for index in range(count):
            prefix = "/v1/" if index % 2 else "/"  # the API's paths (401) and any other (404)
            path = f"{prefix}{secrets.token_hex(4)}-{'x' * 8000}"
            response = client.request(methods[index % len(methods)], path)
            assert response.status_code == (401 if index % 2 else 404)

    with server.client(api_key=None) as client:
        attack(client, 2 * len(methods))  # every series these requests can touch now exists
        before = client.get("/metrics").text
        attack(client, 100)
        after = client.get("/metrics").text
    # Counter values grow by a digit or two; the 100 attack paths of 8 KB would add 800 KB.
    assert len(after) - len(before) < 2_000, "keyless requests added series to /metrics"
    assert "xxxxxxxx" not in after


def test_route_label_is_a_template_never_a_request_path(server: RunningServer) -> None:
    with server.client() as client:
        client.post("/v1/moderations", json={"input": "hello"})
        client.get(f"/v1/{secrets.token_hex(8)}")
        routes = {
            sample.labels["route"]
            for name, samples in metric_samples(client).items()
            if name.startswith("moderation_request_duration_seconds")
            for sample in samples
        }
    assert routes <= {"/v1/moderations", "/v1/models", "unknown"}
    assert "/v1/moderations" in routes and "unknown" in routes


# --- 2. one key, one bucket; Authorization exactly as RFC 9110/6750 define it ----------------


def test_one_key_has_one_bucket_whatever_the_spelling(limited: RunningServer) -> None:
    spellings = ["Bearer ", "bearer ", "BEARER   ", "beArEr  "]
    key = API_KEYS[1]  # the other tests on this server use API_KEYS[0]
    with limited.client(api_key=None) as client:
        statuses = [
            client.get("/v1/models", headers={"Authorization": spellings[n % 4] + key})
            for n in range(LIMITED_BURST + 1)
        ]
        other_key = client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEYS[0]}"})
    assert [response.status_code for response in statuses[:LIMITED_BURST]] == [200] * LIMITED_BURST
    refused = statuses[LIMITED_BURST]
    assert_openai_error(refused, 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert other_key.status_code == 200  # keyed on the key, not shared


# --- 3. clients cannot fake server errors ----------------------------------------------------


def test_a_client_that_disconnects_mid_body_is_a_499_not_a_500(server: RunningServer) -> None:
    request_id = f"disconnect-{secrets.token_hex(4)}"
    with server.client() as client:
        server_errors = requests_with_status(client, "5..")
        head = (
            "POST /v1/moderations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {server.api_key}\r\nX-Request-ID: {request_id}\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        raw_request(server, head.encode() + b'{"input": "cut', read=False)
        statuses = [
            json.loads(line)["httpRequest"]["status"] for line in log_lines(server, request_id)
        ]
        assert statuses == [499]
        assert requests_with_status(client, "499") >= 1
        assert requests_with_status(client, "5..") == server_errors


def test_a_stalled_body_gets_408_with_the_openai_body_and_request_id(
    limited: RunningServer,
) -> None:
    head = (
        "POST /v1/moderations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {limited.api_key}\r\nConnection: close\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    answer = raw_request(limited, head.encode() + b'{"input": "stall')
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"x-request-id:" in head.lower()
    assert json.loads(body)["error"]["code"] == "timeout"


# --- 4. rejected bodies cannot stall the server ----------------------------------------------


def test_an_unrelated_request_stays_fast_while_large_invalid_bodies_arrive(
    limited: RunningServer,
) -> None:
    # 690,000 empty strings in 2 MB, far over the item limit: eight senders, four bodies each.
    body = b'{"input": [' + b",".join([b'""'] * 690_000) + b"]}"
    assert len(body) <= LARGE_BODY_BYTES

    def flood() -> list[int]:
        with limited.client() as client:
            return [client.post("/v1/moderations", content=body).status_code for _ in range(4)]

    with limited.client() as probe:
        quiet = sorted(_timed(probe) for _ in range(3))[1]
        with ThreadPoolExecutor(8) as pool:
            floods = [pool.submit(flood) for _ in range(8)]
            time.sleep(0.3)
            loaded = []
            while not all(future.done() for future in floods):
                loaded.append(_timed(probe))
        statuses = [status for future in floods for status in future.result()]
    assert set(statuses) == {400}
    median = sorted(loaded)[len(loaded) // 2]
    assert median < max(0.3, 5 * quiet), f"{median:.3f} s under load, {quiet:.3f} s quiet"


def _timed(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post("/v1/moderations", json={"input": "hello"})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


# --- 5. look-alike characters do not evade moderation ----------------------------------------

PLAIN_ABUSE = "you are a fucking idiot"
PLAIN_CLEAN = "have a nice day my friend"


def _spell_out(text: str, separator: str) -> str:
    return " ".join(separator.join(word) for word in text.split())


# Latin letter -> the Cyrillic letter that looks the same
CYRILLIC_LOOK_ALIKES = dict(
    zip("aceopxy", "\u0430\u0441\u0435\u043e\u0440\u0445\u0443", strict=True)
)
EVASIONS = {
    "fullwidth": lambda text: "".join(
        chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text
    ),
    "mathematical-bold": lambda text: "".join(
        chr(0x1D41A + ord(char) - ord("a")) if "a" <= char <= "z" else char for char in text
    ),
    "cyrillic-homoglyphs": lambda text: text.translate(str.maketrans(CYRILLIC_LOOK_ALIKES)),
    "zero-width-joiners": lambda text: _spell_out(text, "\u200d"),
    "zero-width-spaces": lambda text: _spell_out(text, "\u200b"),
    "combining-marks": lambda text: "".join(
        char + "\u0336" if char.isalpha() else char for char in text
    ),
    "spaced-letters": lambda text: "  ".join(" ".join(word) for word in text.split()),
}


@pytest.mark.parametrize("plain", [PLAIN_ABUSE, PLAIN_CLEAN], ids=["abuse", "clean"])
@pytest.mark.parametrize("evasion", EVASIONS, ids=list(EVASIONS))
def test_evasion_variants_get_the_decision_of_the_plain_text(
    server: RunningServer, evasion: str, plain: str
) -> None:
    """On the default model (profanity-check); the variant itself differs from the plain text."""
    variant = EVASIONS[evasion](plain)
    assert variant != plain
    with server.client() as client:
        response = client.post("/v1/moderations", json={"input": [plain, variant]})
    assert response.status_code == 200, response.text
    plain_result, variant_result = response.json()["results"]
    assert plain_result["flagged"] is (plain == PLAIN_ABUSE)
    assert variant_result["flagged"] is plain_result["flagged"], normalize(variant)


# --- 6. logs, redirects, headers, duplicate keys ---------------------------------------------


def test_client_supplied_log_fields_are_bounded_and_escaped(server: RunningServer) -> None:
    marker = secrets.token_hex(6)
    with server.client(api_key=None) as client:
        response = client.get(
            f"/v1/{marker}/%E2%80%A8forged/{'p' * 8_000}",
            headers={"User-Agent": "u" * 8_000, "X-Request-ID": f"id-{marker}"},
        )
    assert response.status_code == 401
    (line,) = log_lines(server, marker)
    assert len(line) < 2_000
    assert line.isascii()  # U+2028 and every other non-ASCII character arrive escaped
    entry = json.loads(line)
    assert "\u2028" in entry["httpRequest"]["requestUrl"]
    assert len(entry["httpRequest"]["userAgent"]) <= 256


@pytest.mark.parametrize("path", ["/v1", "/v1/moderations/", "/v1/models/", "/docs.json/"])
def test_no_redirect_is_built_from_the_host_header(server: RunningServer, path: str) -> None:
    with server.client() as client:
        response = client.get(path, headers={"Host": "evil.example"})
    assert not response.is_redirect
    assert "evil.example" not in response.headers.get("Location", "")
    assert response.status_code in (401, 404, 405)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/livez", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/docs.json", 200),
        ("GET", "/v1/models", 200),
        ("POST", "/v1/moderations", 400),
        ("GET", "/v1/nothing", 404),
        ("GET", "/nothing", 404),
        ("DELETE", "/v1/models", 405),
    ],
)
def test_security_headers_on_every_response(
    server: RunningServer, method: str, path: str, status: int
) -> None:
    with server.client() as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Request-ID"]
