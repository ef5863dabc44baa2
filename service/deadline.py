"""A time limit for part of a request whose timer keeps none of the request alive.

`asyncio.timeout` and `asyncio.wait_for` schedule a timer that holds a copy of the caller's
context, and inside a request that context holds BentoML's `Request`: its scope, its body and its
connection. Cancelled when the block ends, such a timer stays on the event loop's heap until its
deadline unless more than half of the heap is cancelled timers, and BentoML's traffic timeout adds
one live timer per request that it never cancels, so that clean-up seldom runs: every request's
state outlived it by the whole timeout, and the worker's memory grew with request rate x timeout
(209 MiB in CI's one-minute soak test; docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextvars
from types import TracebackType


class Deadline:
    """`async with Deadline(seconds):` raises TimeoutError in the block once it has run `seconds`,
    as `asyncio.timeout` does (an outer cancellation stays a CancelledError), from a timer that runs
    in an empty context."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._timer = asyncio.get_running_loop().call_later(
            self.seconds, self._expire, context=contextvars.Context()
        )
        return self

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()  # also drops the timer's reference to this object, hence the task
        if not self.expired:
            return
        cancelled_from_outside = self._task.uncancel() > self._cancelling
        if exc_type is asyncio.CancelledError and not cancelled_from_outside:
            raise TimeoutError from exc
