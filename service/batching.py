"""In-process adaptive batching: requests queue their texts, one inference thread scores them.

There is no batching window. When the inference thread is idle, a request is scored at once; while
it is busy, requests queue up, and its next batch takes what is queued for one model (the model of
the oldest request), up to `max_texts` texts and `max_chars` characters, oldest first. A request
larger than one batch is spread over several. Within a batch, texts are sorted by length and
scored in model calls of at most `max_chars` padded characters (count x longest), so that short
texts are not padded to the length of a long one. Characters stand in for tokens: backends
tokenize later, and a text's token count grows with its length.

The queue is bounded by requests and by texts (`max_queued_requests`, `max_queued_texts`, counting
everything accepted and not yet answered): beyond that `submit` raises `Overloaded` at once, so an
overloaded pod sheds load instead of letting clients time out.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")
# (model, texts) -> one result per text, in order; runs on the inference thread.
ScoreFn = Callable[[str, list[str]], list[Result]]
# (model, texts in the call, seconds) after every model call; runs on the inference thread.
BatchObserver = Callable[[str, int, float], None]
# A model call's padded characters (count x longest) stay within this multiple of its real ones;
# texts shorter than PADDING_FLOOR_CHARS count as that long (special tokens, short words).
MAX_PADDING_RATIO = 1.25
PADDING_FLOOR_CHARS = 32


class Overloaded(Exception):
    """The queue is full: the request was not accepted (answer 503 with Retry-After)."""


@dataclass(frozen=True)
class BatchLimits:
    max_texts: int
    max_chars: int
    max_queued_requests: int
    max_queued_texts: int


@dataclass(eq=False)
class _Request(Generic[Result]):
    model: str
    texts: Sequence[str]
    future: asyncio.Future[list[Result]]
    results: list[Result | None] = field(init=False)
    taken: int = 0  # texts handed to a batch so far
    scored: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)


@dataclass(frozen=True)
class _Item:
    request: _Request[object]
    index: int

    @property
    def text(self) -> str:
        return self.request.texts[self.index]


class Batcher(Generic[Result]):
    """The queue and the inference thread; `start_on_thread` lends the thread (model loading)."""

    def __init__(
        self, score: ScoreFn[Result], limits: BatchLimits, observe: BatchObserver | None = None
    ) -> None:
        self._score, self.limits, self._observe = score, limits, observe
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._queue: deque[_Request[Result]] = deque()
        self._pending: set[_Request[Result]] = set()  # accepted, not yet answered
        self._pending_texts = 0
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    @property
    def pending(self) -> tuple[int, int]:
        """(requests, texts) accepted and not yet answered."""
        return len(self._pending), self._pending_texts

    def start_on_thread(self, function: Callable[[], None]) -> Future[None]:
        """Run `function` on the inference thread, before any batch that is not yet taken."""
        return self._executor.submit(function)

    async def submit(self, model: str, texts: Sequence[str]) -> list[Result]:
        """Scores for `texts`, in order; raises Overloaded when the queue is full.

        Cancelling the caller (a timeout, a client gone) drops texts not yet handed to a batch.
        """
        queued, queued_texts = self.pending
        limits = self.limits
        if queued >= limits.max_queued_requests:
            raise Overloaded(f"{queued} requests queued (limit {limits.max_queued_requests})")
        if queued_texts + len(texts) > limits.max_queued_texts:
            raise Overloaded(
                f"{queued_texts} texts queued, {len(texts)} more would pass the limit of "
                f"{limits.max_queued_texts}"
            )
        self._ensure_running()
        request: _Request[Result] = _Request(
            model, texts, asyncio.get_running_loop().create_future()
        )
        self._queue.append(request)
        self._pending.add(request)
        self._pending_texts += len(texts)
        assert self._wake is not None
        self._wake.set()
        try:
            return await request.future
        finally:
            self._forget(request)

    async def stop(self) -> None:
        """Stop taking batches (after the one in progress) and release the thread."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        self._executor.shutdown(wait=True)

    def _ensure_running(self) -> None:
        if self._runner is None:
            self._wake = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run())

    def _forget(self, request: _Request[Result]) -> None:
        if request in self._pending:
            self._pending.discard(request)
            self._pending_texts -= len(request.texts)
        if request in self._queue:
            self._queue.remove(request)

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            items = self._next_batch()
            if not items:
                self._wake.clear()
                continue
            model = items[0].request.model
            try:
                scores = await loop.run_in_executor(self._executor, self._score_batch, model, items)
            except Exception as error:  # handed to every request of the batch
                for request in {item.request for item in items}:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            for item, score in zip(items, scores, strict=True):
                request = item.request
                request.results[item.index] = score
                request.scored += 1
                if request.scored == len(request.texts) and not request.future.done():
                    request.future.set_result(request.results)

    def _next_batch(self) -> list[_Item]:
        """Texts of the oldest request's model, oldest first, within the batch limits."""
        if not self._queue:
            return []
        model = self._queue[0].model
        items: list[_Item] = []
        chars = 0
        for request in list(self._queue):
            if request.model != model:
                continue
            while request.taken < len(request.texts):
                length = len(request.texts[request.taken])
                if items and (
                    len(items) == self.limits.max_texts or chars + length > self.limits.max_chars
                ):
                    return items
                items.append(_Item(request, request.taken))  # type: ignore[arg-type]
                request.taken += 1
                chars += length
            self._queue.remove(request)
        return items

    def _score_batch(self, model: str, items: list[_Item]) -> list[Result]:
        """On the inference thread: score the batch in length-sorted model calls."""
        order = sorted(range(len(items)), key=lambda position: len(items[position].text))
        results: list[Result | None] = [None] * len(items)
        for call in _padded_chunks([len(items[position].text) for position in order], self.limits):
            positions = [order[index] for index in call]
            started = time.perf_counter()
            scores = self._score(model, [items[position].text for position in positions])
            if self._observe is not None:
                self._observe(model, len(positions), time.perf_counter() - started)
            for position, score in zip(positions, scores, strict=True):
                results[position] = score
        return results  # type: ignore[return-value]


def _padded_chunks(sorted_lengths: list[int], limits: BatchLimits) -> list[range]:
    """Consecutive index ranges whose padded size (count x longest) stays within max_chars and
    within MAX_PADDING_RATIO of the characters really there.

    On CPU a padded position costs as much as a real one (more: DeBERTa's attention grows with
    the padded length), while one more model call costs little, so a short text is never padded
    far beyond its length (docs/performance.md).
    """
    chunks: list[range] = []
    start, real = 0, 0
    for index, length in enumerate(sorted_lengths):
        # lengths ascend, so `length` is the longest of start..index
        counted = max(length, PADDING_FLOOR_CHARS)
        padded = (index - start + 1) * counted
        real += counted
        if index > start and (padded > limits.max_chars or padded > MAX_PADDING_RATIO * real):
            chunks.append(range(start, index))
            start, real = index, counted
    if sorted_lengths:
        chunks.append(range(start, len(sorted_lengths)))
    return chunks
