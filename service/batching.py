"""In-process adaptive batching: requests queue their texts, inference lanes score them.

There is no batching window. When a lane (an inference thread; `lanes` of them, one model call
each at a time) is idle, a request is scored at once; while all are busy, requests queue up, each
under its client (the API key). A batch is formed when a lane frees, so texts wait in their
client's queue, not in a lane's, and the next batch serves the
clients in turn: the model is that of the oldest request of the client whose turn it is, and the
batch takes one text from each client with texts queued for that model, round after round, up to
`max_texts` texts and `max_chars` characters. So one client's heavy requests delay another
client's small request by at most the model call in progress: the small text is in the next
batch, and a request's results are handed over after each model call, not after the whole batch.
A request larger than one batch is spread over several. Within a batch, texts are sorted by
length and scored in model calls of at most `max_chars` padded characters (count x longest), so
that short texts are not padded to the length of a long one. Characters stand in for tokens:
backends tokenize later, and a text's token count grows with its length.

The queue is bounded by requests and by texts (`max_queued_requests`, `max_queued_texts`, counting
everything accepted and not yet answered): beyond that `submit` raises `Overloaded` at once, so an
overloaded pod sheds load instead of letting clients time out. A named client may hold at most
half of either bound, so that no single key can fill the queue for the others.
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
# (model, texts) -> one result per text, in order; runs on a lane's thread.
ScoreFn = Callable[[str, list[str]], list[Result]]
# (model, texts in the call, seconds) after every model call; runs on a lane's thread.
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
    client: str | None
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
    """The queue and the inference lanes; `start_on_thread` lends a lane's thread (model loading).
    `score` must allow `lanes` calls at once."""

    def __init__(
        self,
        score: ScoreFn[Result],
        limits: BatchLimits,
        observe: BatchObserver | None = None,
        lanes: int = 1,
    ) -> None:
        self._score, self.limits, self._observe = score, limits, observe
        self.lanes = lanes
        self._executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="inference")
        self._batches: set[asyncio.Task[None]] = set()  # batches being scored, one per busy lane
        # Requests with texts not yet in a batch, per client, in the order the clients take turns.
        self._queues: dict[str | None, deque[_Request[Result]]] = {}
        self._pending: set[_Request[Result]] = set()  # accepted, not yet answered
        self._pending_texts = 0
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    @property
    def pending(self) -> tuple[int, int]:
        """(requests, texts) accepted and not yet answered."""
        return len(self._pending), self._pending_texts

    def start_on_thread(self, function: Callable[[], None]) -> Future[None]:
        """Run `function` on an inference thread (the caller keeps requests away until it is
        done: the models load there)."""
        return self._executor.submit(function)

    async def submit(
        self, model: str, texts: Sequence[str], client: str | None = None
    ) -> list[Result]:
        """Scores for `texts`, in order; raises Overloaded when the queue is full.

        `client` (an API key id) takes its turn with the others; None is the anonymous client,
        which has no share of its own (auth disabled: nobody else to be fair to).
        Cancelling the caller (a timeout, a client gone) drops texts not yet handed to a batch.
        """
        self._admit(client, len(texts))
        self._ensure_running()
        request: _Request[Result] = _Request(
            client, model, texts, asyncio.get_running_loop().create_future()
        )
        self._queues.setdefault(client, deque()).append(request)
        self._pending.add(request)
        self._pending_texts += len(texts)
        assert self._wake is not None
        self._wake.set()
        try:
            return await request.future
        finally:
            self._forget(request)

    def _admit(self, client: str | None, texts: int) -> None:
        """Raise Overloaded when the queue, or this client's half of it, has no room."""
        limits = self.limits
        queued, queued_texts = self.pending
        if queued >= limits.max_queued_requests:
            raise Overloaded(f"{queued} requests queued (limit {limits.max_queued_requests})")
        if queued_texts + texts > limits.max_queued_texts:
            raise Overloaded(
                f"{queued_texts} texts queued, {texts} more would pass the limit of "
                f"{limits.max_queued_texts}"
            )
        if client is None:
            return
        own = [request for request in self._pending if request.client == client]
        own_texts = sum(len(request.texts) for request in own)
        if len(own) >= limits.max_queued_requests // 2 or (
            own and own_texts + texts > limits.max_queued_texts // 2
        ):
            raise Overloaded(f"this client holds {len(own)} requests, {own_texts} texts")

    async def stop(self) -> None:
        """Stop taking batches (after the model calls in progress) and release the threads."""
        tasks = [task for task in (self._runner, *self._batches) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        queue = self._queues.get(request.client)
        if queue is not None and request in queue:
            queue.remove(request)
            if not queue:
                del self._queues[request.client]

    async def _run(self) -> None:
        """Whenever a lane is free and texts wait, the next batch goes to that lane."""
        assert self._wake is not None
        free_lanes = asyncio.Semaphore(self.lanes)
        while True:
            await self._wake.wait()
            await free_lanes.acquire()
            items = self._next_batch()
            if not items:
                free_lanes.release()
                self._wake.clear()
                continue
            batch = asyncio.get_running_loop().create_task(self._score_batch(items))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)
            batch.add_done_callback(lambda _: free_lanes.release())

    async def _score_batch(self, items: list[_Item]) -> None:
        """One batch on one lane: its model calls in turn, results handed over after each."""
        loop = asyncio.get_running_loop()
        model = items[0].request.model
        for call in _padded_chunks(items, self.limits):
            try:
                scores = await loop.run_in_executor(
                    self._executor, self._score_call, model, [item.text for item in call]
                )
            except Exception as error:  # handed to every request of the call
                for request in {item.request for item in call}:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            for item, score in zip(call, scores, strict=True):
                request = item.request
                request.results[item.index] = score
                request.scored += 1
                if request.scored == len(request.texts) and not request.future.done():
                    request.future.set_result(request.results)

    def _next_batch(self) -> list[_Item]:
        """One text from each client in turn, for the model of the client whose turn it is,
        within the batch limits; that client's turn then passes to the next."""
        if not self._queues:
            return []
        first = next(iter(self._queues))
        model = self._queues[first][0].model
        items: list[_Item] = []
        chars = 0
        taking = list(self._queues.values())
        while taking and len(items) < self.limits.max_texts:
            for queue in list(taking):
                request = next((request for request in queue if request.model == model), None)
                length = len(request.texts[request.taken]) if request is not None else 0
                if request is None or (items and chars + length > self.limits.max_chars):
                    taking.remove(queue)
                    continue
                items.append(_Item(request, request.taken))  # type: ignore[arg-type]
                request.taken += 1
                chars += length
                if request.taken == len(request.texts):
                    queue.remove(request)
                if len(items) == self.limits.max_texts:
                    break
        for client, queue in list(self._queues.items()):
            if not queue or client == first:  # emptied, or its turn is over
                del self._queues[client]
                if queue:
                    self._queues[client] = queue
        return items

    def _score_call(self, model: str, texts: list[str]) -> list[Result]:
        """On a lane's thread: one model call, observed."""
        started = time.perf_counter()
        scores = self._score(model, texts)
        if self._observe is not None:
            self._observe(model, len(texts), time.perf_counter() - started)
        return scores


def _padded_chunks(items: list[_Item], limits: BatchLimits) -> list[list[_Item]]:
    """The batch sorted by length, cut into model calls whose padded size (count x longest) stays
    within max_chars and within MAX_PADDING_RATIO of the characters really there.

    On CPU a padded position costs as much as a real one (more: DeBERTa's attention grows with
    the padded length), while one more model call costs little, so a short text is never padded
    far beyond its length (docs/performance.md).
    """
    chunks: list[list[_Item]] = []
    chunk: list[_Item] = []
    real = 0
    for item in sorted(items, key=lambda item: len(item.text)):
        # sorted by length, so `item` is the longest of its chunk
        counted = max(len(item.text), PADDING_FLOOR_CHARS)
        padded = (len(chunk) + 1) * counted
        if chunk and (padded > limits.max_chars or padded > MAX_PADDING_RATIO * (real + counted)):
            chunks.append(chunk)
            chunk, real = [], 0
        chunk.append(item)
        real += counted
    if chunk:
        chunks.append(chunk)
    return chunks
