"""Batching correctness against the session's real `bentoml serve`: under concurrent load that
mixes models, text lengths and multi-input requests in the same batches, every result is the
text's own score, the same as when that text is scored alone.

Black-box over HTTP, so it holds for whatever batches the requests (BentoML's adaptive batching
or the service's own batcher).
"""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.categories import CATEGORIES
from tests.fixtures.servers import LIMITS, RunningServer
from tests.service.test_api import metric_samples, metric_value

pytestmark = pytest.mark.slow
MODELS = ("profanity-check", "tiny-koala", "tiny-toxic")  # sklearn and two transformers
# (mildly rude, so that the profanity model's scores spread out instead of all reaching 1.0)
WORDS = ("the", "weather", "is", "nice", "today", "and", "you", "look", "dumb", "in", "that", "hat")
# Distinct texts of 1 to 31 words (5 to ~110 tokens, within the tiny models' 128), so that
# batches pad short texts next to long ones.
TEXTS = [
    f"{index} " + " ".join(itertools.islice(itertools.cycle(WORDS[index % 5 :]), 1 + 2 * index))
    for index in range(16)
]
ROUNDS = 4  # each (model, text) pair is asked this often, alone, during the concurrent phase
CLIENTS = 48
TOLERANCE = 1e-5  # float32 scores of one text padded to different lengths differ by ~1e-6


def scores_of(response: httpx.Response) -> list[list[float]]:
    assert response.status_code == 200, response.text
    return [
        [result["category_scores"][category] for category in CATEGORIES]
        for result in response.json()["results"]
    ]


@pytest.fixture(scope="module")
def alone(server: RunningServer) -> dict[tuple[str, str], list[float]]:
    """Each text's scores from a request of its own, one request at a time."""
    with server.client() as client:
        return {
            (model, text): scores_of(
                client.post("/v1/moderations", json={"model": model, "input": text})
            )[0]
            for model in MODELS
            for text in TEXTS
        }


def test_texts_have_scores_far_enough_apart_to_tell_them_apart(
    alone: dict[tuple[str, str], list[float]],
) -> None:
    """Precondition of the next test: a result given to the wrong text would not match.

    The random tiny models score a few texts alike (a two-label one saturates); almost every
    pair must differ, per model.
    """
    for model in MODELS:
        pairs = list(itertools.combinations(TEXTS, 2))
        apart = sum(
            max(abs(a - b) for a, b in zip(alone[model, one], alone[model, other], strict=True))
            > 2 * TOLERANCE
            for one, other in pairs
        )
        assert apart >= 0.9 * len(pairs), model


def test_concurrent_mixed_batches_give_each_text_its_own_score(
    server: RunningServer, alone: dict[tuple[str, str], list[float]]
) -> None:
    rng = random.Random(10)
    requests: list[tuple[str, list[str]]] = [
        (model, [text]) for model in MODELS for text in TEXTS for _ in range(ROUNDS)
    ]
    max_inputs = int(LIMITS["MODERATION_MAX_INPUTS"])
    requests += [
        (model, rng.sample(TEXTS, rng.randint(2, max_inputs))) for model in MODELS for _ in range(8)
    ]
    rng.shuffle(requests)
    before = metric_samples(server)

    def send(client: httpx.Client, request: tuple[str, list[str]]) -> httpx.Response:
        model, texts = request
        return client.post("/v1/moderations", json={"model": model, "input": texts})

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    with server.client(limits=limits) as client, ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(lambda request: send(client, request), requests))

    for (model, texts), response in zip(requests, responses, strict=True):
        assert response.json()["model"] == model
        results = scores_of(response)
        assert len(results) == len(texts)
        for text, scores in zip(texts, results, strict=True):
            assert scores == pytest.approx(alone[model, text], abs=TOLERANCE), (model, text)

    # The load really was batched: fewer forward passes than requests, for every model.
    after = metric_samples(server)
    passes = "moderation_inference_latency_seconds_count"
    for model in MODELS:
        asked = sum(asked == model for asked, _ in requests)
        done = metric_value(after, passes, model=model) - metric_value(before, passes, model=model)
        assert 0 < done < asked, (model, done, asked)
