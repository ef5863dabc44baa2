"""The in-process batcher (service/batching.py).

Unit tests with a plain scoring function: what each model call receives, in which order, and how
the queue bounds shed load. Then batching correctness against the session's real `bentoml serve`:
under concurrent load that mixes models, text lengths and multi-input requests in the same batches,
every result is the text's own score, the same as when that text is scored alone (black-box over
HTTP, so it holds for whatever batches the requests).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.batching import Batcher, BatchLimits, Overloaded
from service.categories import CATEGORIES
from tests.fixtures.http import metric_samples, metric_value
from tests.fixtures.servers import LIMITS as SERVER_LIMITS
from tests.fixtures.servers import RunningServer

LIMITS = BatchLimits(max_texts=8, max_chars=1000, max_queued_requests=16, max_queued_texts=64)


class Recorder:
    """Scores a text as (model, text); records every call; can hold the thread until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, model: str, texts: list[str]) -> list[tuple[str, str]]:
        self.entered.set()
        self.release.wait(timeout=10)
        self.calls.append((model, list(texts)))
        return [(model, text) for text in texts]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


async def _hold(recorder: Recorder, batcher: Batcher[tuple[str, str]]) -> asyncio.Task[object]:
    """Occupy the inference thread with one request until `recorder.release` is set."""
    recorder.release.clear()
    held = asyncio.create_task(batcher.submit("busy", ["occupies the thread"]))
    await asyncio.to_thread(recorder.entered.wait, 10)
    return held


def test_an_idle_batcher_scores_a_request_at_once_in_one_call() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, LIMITS)
        assert await batcher.submit("a", ["x", "yy"]) == [("a", "x"), ("a", "yy")]
        assert recorder.calls == [("a", ["x", "yy"])]
        await batcher.stop()

    run(scenario)


def test_requests_queued_while_busy_share_one_call_per_model_oldest_model_first() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, LIMITS)
        held = await _hold(recorder, batcher)
        requests = [("b", "b1"), ("a", "a1"), ("b", "b2"), ("a", "a2"), ("b", "b3")]
        tasks = [asyncio.create_task(batcher.submit(model, [text])) for model, text in requests]
        await asyncio.sleep(0.05)  # all queued behind the held call
        recorder.release.set()
        results = await asyncio.gather(*tasks)
        await held
        assert results == [[(model, text)] for model, text in requests]  # each its own result
        assert recorder.calls[1:] == [("b", ["b1", "b2", "b3"]), ("a", ["a1", "a2"])]
        await batcher.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("limits", "sizes"),
    [(LIMITS, [8, 8, 4]), (BatchLimits(64, 160, 16, 64), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])],
    ids=["by-texts", "by-characters"],
)
def test_a_request_larger_than_one_batch_is_spread_over_several_in_order(
    limits: BatchLimits, sizes: list[int]
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, limits)
        texts = [f"{index:02}" * 35 for index in range(20)]  # 70 characters each
        assert await batcher.submit("a", texts) == [("a", text) for text in texts]
        assert [len(call) for _, call in recorder.calls] == sizes
        await batcher.stop()

    run(scenario)


def test_model_calls_group_texts_by_length_within_the_padded_character_budget() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, BatchLimits(8, 300, 16, 64))
        texts = ["x" * 100] * 5  # one batch of 500 characters
        assert await batcher.submit("a", texts) == [("a", text) for text in texts]
        # a call holds at most 300 padded characters (count x longest)
        assert [len(call) for _, call in recorder.calls] == [3, 2]
        await batcher.stop()

    run(scenario)


def test_model_calls_sort_by_length_and_bound_the_padding() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, BatchLimits(8, 10_000, 16, 64))
        texts = ["l" * 100, "s", "m" * 50, "ss", "L" * 99]  # one batch
        assert await batcher.submit("a", texts) == [("a", text) for text in texts]
        # Sorted by length; a call's padded size stays within 1.25x its real characters, texts
        # under 32 characters counting as 32: "m" * 50 would pad "s" and "ss" to 150 for 114.
        assert recorder.calls == [
            ("a", ["s", "ss"]),
            ("a", ["m" * 50]),
            ("a", ["L" * 99, "l" * 100]),
        ]
        await batcher.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("limits", "second_request"),
    [
        (BatchLimits(8, 1000, max_queued_requests=2, max_queued_texts=64), ["one"]),
        (BatchLimits(8, 1000, max_queued_requests=16, max_queued_texts=4), ["one", "two", "3"]),
    ],
    ids=["requests", "texts"],
)
def test_a_full_queue_refuses_at_once_and_accepts_again_once_drained(
    limits: BatchLimits, second_request: list[str]
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, limits)
        held = await _hold(recorder, batcher)  # 1 request, 1 text pending
        queued = asyncio.create_task(batcher.submit("a", ["queued"]))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await batcher.submit("a", second_request)
        recorder.release.set()
        await asyncio.gather(held, queued)
        assert batcher.pending == (0, 0)
        assert await batcher.submit("a", second_request) == [("a", t) for t in second_request]
        await batcher.stop()

    run(scenario)


def test_a_cancelled_request_leaves_the_queue_and_is_never_scored() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, LIMITS)
        held = await _hold(recorder, batcher)
        gone = asyncio.create_task(batcher.submit("a", ["gone"]))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0.05)
        assert batcher.pending == (1, 1)  # only the held one
        recorder.release.set()
        await held
        assert await batcher.submit("a", ["kept"]) == [("a", "kept")]
        assert ["gone"] not in [texts for _, texts in recorder.calls]
        await batcher.stop()

    run(scenario)


def test_a_failing_call_fails_only_the_requests_in_it() -> None:
    async def scenario() -> None:
        def score(model: str, texts: list[str]) -> list[str]:
            if model == "broken":
                raise RuntimeError("model exploded")
            return texts

        batcher = Batcher(score, LIMITS)
        with pytest.raises(RuntimeError, match="model exploded"):
            await batcher.submit("broken", ["x"])
        assert await batcher.submit("fine", ["y"]) == ["y"]
        await batcher.stop()

    run(scenario)


def test_two_lanes_run_two_model_calls_at_once() -> None:
    """Each call waits until the other has started: with one lane they never would."""
    both_started = threading.Barrier(2, timeout=5)

    def score(model: str, texts: list[str]) -> list[str]:
        both_started.wait()
        return texts

    async def scenario() -> None:
        batcher = Batcher(score, LIMITS, lanes=2)
        # two models: two batches, one per lane
        first = asyncio.create_task(batcher.submit("a", ["x"]))
        second = asyncio.create_task(batcher.submit("b", ["y"]))
        assert await asyncio.gather(first, second) == [["x"], ["y"]]
        await batcher.stop()

    run(scenario)


def test_texts_wait_in_the_queue_not_in_a_lane_while_every_lane_is_busy() -> None:
    """With both lanes held, later requests are not taken into a batch: a cancelled one is never
    scored, and the rest share the next batch."""

    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, LIMITS, lanes=2)
        recorder.release.clear()
        held = [asyncio.create_task(batcher.submit(model, ["busy"])) for model in ("p", "q")]
        while len(batcher._batches) < 2:
            await asyncio.sleep(0.01)
        cancelled = asyncio.create_task(batcher.submit("m", ["dropped"]))
        kept = [asyncio.create_task(batcher.submit("m", [text])) for text in ("k1", "k2")]
        await asyncio.sleep(0.05)
        cancelled.cancel()
        recorder.release.set()
        assert [await task for task in kept] == [[("m", "k1")], [("m", "k2")]]
        await asyncio.gather(*held)
        assert ("m", ["k1", "k2"]) in recorder.calls
        assert all("dropped" not in texts for _, texts in recorder.calls)
        await batcher.stop()

    run(scenario)


def test_every_model_call_is_observed_with_its_size() -> None:
    async def scenario() -> None:
        seen: list[tuple[str, int]] = []
        batcher = Batcher(Recorder(), LIMITS, observe=lambda model, n, _: seen.append((model, n)))
        await batcher.submit("a", [f"{index}" for index in range(10)])
        assert seen == [("a", 8), ("a", 2)]
        await batcher.stop()

    run(scenario)


def test_clients_take_turns_so_a_heavy_one_delays_another_by_one_call_at_most() -> None:
    """Issue 20: the queue was first-in-first-out across keys, so one key's 150 queued texts
    came before another key's one."""

    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(recorder, LIMITS)
        held = await _hold(recorder, batcher)
        heavy = [
            asyncio.create_task(batcher.submit("a", [f"h{n}-{i}" for i in range(8)], "heavy"))
            for n in range(4)
        ]
        await asyncio.sleep(0.05)
        light = asyncio.create_task(batcher.submit("a", ["light"], "light"))
        await asyncio.sleep(0.05)
        recorder.release.set()
        await asyncio.gather(held, light, *heavy)
        calls = [texts for _, texts in recorder.calls[1:]]
        assert "light" in calls[0]  # the first call after the one in progress
        assert sum(len(texts) for texts in calls) == 33
        await batcher.stop()

    run(scenario)


def test_a_client_may_hold_half_of_the_queue_and_the_others_the_rest() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher(
            recorder, BatchLimits(8, 1000, max_queued_requests=8, max_queued_texts=64)
        )
        held = await _hold(recorder, batcher)
        queued = [asyncio.create_task(batcher.submit("a", ["x"], "greedy")) for _ in range(4)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await batcher.submit("a", ["one more"], "greedy")
        other = asyncio.create_task(batcher.submit("a", ["y"], "other"))
        recorder.release.set()
        assert await other == [("a", "y")]
        await asyncio.gather(held, *queued)
        await batcher.stop()

    run(scenario)


# --- against the real server ----------------------------------------------------------------

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_concurrent_mixed_batches_give_each_text_its_own_score(
    server: RunningServer, alone: dict[tuple[str, str], list[float]]
) -> None:
    rng = random.Random(10)
    requests: list[tuple[str, list[str]]] = [
        (model, [text]) for model in MODELS for text in TEXTS for _ in range(ROUNDS)
    ]
    max_inputs = int(SERVER_LIMITS["MODERATION_MAX_INPUTS"])
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
