"""A key holder who sends the heaviest requests the limits allow cannot starve the other keys
(issue 20, findings 1 and 2), replayed against a real `bentoml serve` with two API keys.

A heavy key sends requests of the report, each within every limit (2 MB, 20,000 characters a
text); meanwhile another key's one-text requests must each be answered within 2 s. Before:
normalisation was quadratic in a run of marks and ran on the inference thread, NFKC grew texts
18-fold after the limits had counted them, and the queue was first-in-first-out across keys, so
the other key waited 25-48 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.auth import hash_key
from tests.fixtures.http import assert_openai_error
from tests.fixtures.servers import API_KEYS, RunningServer, server_env, serving

pytestmark = pytest.mark.slow

MAX_INPUT_CHARS = 20_000  # the service's defaults, not the session server's small test limits
MAX_BODY_BYTES = 2 * 1024 * 1024
LIGHT_KEY_DEADLINE_S = 2.0
# Above the heavy requests of the fairness tests (3 x 1,000,000 + 3 x 680,000), so that they
# test fairness alone (the first test drains API_KEYS[0], which then sends small requests only).
CHARS_PER_MINUTE = 6_000_000
# Finding 1: a run of 19,998 combining marks (0.46 s each to normalise before); 50 in a body.
MARKS = ["a" + "\u0301\u0316" * 9_999] * 50
# Finding 2: NFKC makes 18 characters of U+FDFA (360,000 of each text before); 34 in a body.
GROWING = ["\ufdfa" * MAX_INPUT_CHARS] * 34


@pytest.fixture(scope="module")
def two_keys(
    catalog_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The service's default text and body limits, both keys, the per-key request limit of the
    report (120 a minute) and a character limit."""
    log_path = tmp_path_factory.mktemp("two-keys") / "server.log"
    env = server_env(
        catalog_file,
        MODERATION_API_KEY_HASHES=",".join(hash_key(key) for key in API_KEYS),
        MODERATION_MAX_INPUTS="64",
        MODERATION_MAX_INPUT_CHARS=str(MAX_INPUT_CHARS),
        MODERATION_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        MODERATION_KEY_REQUESTS_PER_MINUTE="120",
        MODERATION_KEY_CHARS_PER_MINUTE=str(CHARS_PER_MINUTE),
    )
    with serving(env, log_path) as running:
        yield running


def _body(texts: list[str]) -> bytes:
    body = json.dumps({"input": texts}, ensure_ascii=False).encode()
    assert len(body) <= MAX_BODY_BYTES  # within every limit
    return body


def test_a_key_is_limited_by_the_characters_it_sends_not_only_by_requests(
    two_keys: RunningServer,
) -> None:
    """120 requests a minute of 1.3 MB each are far more work than 120 small ones: a key gets a
    minute's characters at once (the last request may overdraw them), then what refills."""
    text = "x" * MAX_INPUT_CHARS
    body = {"input": [text] * 64}  # 1,280,000 characters, in one request
    with two_keys.client(API_KEYS[0]) as key_a, two_keys.client(API_KEYS[1]) as key_b:
        started = time.monotonic()
        answers = []
        while len(answers) < 10 and (not answers or answers[-1].status_code == 200):
            answers.append(key_a.post("/v1/moderations", json=body))
        refilled = (time.monotonic() - started) * CHARS_PER_MINUTE / 60
        accepted = sum(answer.status_code == 200 for answer in answers)
        assert_openai_error(answers[-1], 429)
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert (accepted - 1) * len(text) * 64 <= CHARS_PER_MINUTE + refilled
        assert key_b.post("/v1/moderations", json={"input": text}).status_code == 200


@pytest.mark.parametrize("texts", [MARKS, GROWING], ids=["marks", "growing"])
def test_another_key_is_answered_within_2_s_while_one_sends_the_heaviest_requests(
    two_keys: RunningServer, texts: list[str]
) -> None:
    body = _body(texts)
    with (
        two_keys.client(API_KEYS[1]) as heavy_key,
        two_keys.client(API_KEYS[0]) as light_key,
        ThreadPoolExecutor(3) as pool,
    ):
        heavy = [
            pool.submit(
                heavy_key.post,
                "/v1/moderations",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            for _ in range(3)
        ]
        time.sleep(0.5)  # the heavy requests are in
        latencies = []
        while not all(request.done() for request in heavy) or len(latencies) < 5:
            started = time.perf_counter()
            answer = light_key.post("/v1/moderations", json={"input": "hello there"})
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
            time.sleep(0.5)  # within the key's 120 requests a minute
        statuses = [request.result().status_code for request in heavy]
    assert statuses == [200, 200, 200]  # the heavy key was served too, within its limits
    assert max(latencies) < LIGHT_KEY_DEADLINE_S, latencies
