"""The in-process batcher (service/batching.py), unit-tested with a plain scoring function: what
each model call receives, in which order, and how the queue bounds shed load."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from service.batching import Batcher, BatchLimits, Overloaded

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
