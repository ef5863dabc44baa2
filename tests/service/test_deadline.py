"""Deadlines. Deadline: asyncio.timeout's behaviour, without its timer keeping the caller's context
alive. RequestDeadline: a request the server cannot answer in time gets the OpenAI 504 from inside
the API app (logged and counted), not BentoML's bare 504 from outside it; in process, the API app
of service/api.py with a route that hangs."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.deadline import Deadline
from service.settings import Settings


class RequestState:
    """Stands for BentoML's Request, which its ContextMiddleware puts in a context variable."""


REQUEST: contextvars.ContextVar[RequestState] = contextvars.ContextVar("request")


def test_a_block_over_its_deadline_raises_timeout_error() -> None:
    async def main() -> bool:
        with pytest.raises(TimeoutError):
            async with Deadline(0.05) as deadline:
                await asyncio.sleep(5)
        return deadline.expired

    assert asyncio.run(asyncio.wait_for(main(), 2))


def test_a_block_within_its_deadline_returns_its_result() -> None:
    async def main() -> tuple[str, bool]:
        async with Deadline(5) as deadline:
            await asyncio.sleep(0.01)
            result = "in time"
        await asyncio.sleep(0.05)  # no cancellation is left pending after the block
        return result, deadline.expired

    assert asyncio.run(main()) == ("in time", False)


def test_an_outer_cancellation_stays_a_cancellation_even_after_the_deadline() -> None:
    async def inner() -> None:
        async with Deadline(0.05):
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.sleep(0.2)  # the deadline passes while the cancellation unwinds

    async def main() -> None:
        task = asyncio.create_task(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def request_state_alive_after(
    limit: Callable[[float], AbstractAsyncContextManager[object]],
) -> bool:
    """Runs a request-like task that sets REQUEST and ends well within `limit(60)`, then says
    whether its state is still alive while the cancelled timer is still on the loop's heap."""

    async def request() -> weakref.ref[RequestState]:
        state = RequestState()
        REQUEST.set(state)
        async with limit(60):
            await asyncio.sleep(0)
        return weakref.ref(state)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        # BentoML's traffic timer: live, due before ours, so the loop drops no cancelled timer.
        traffic_timer = loop.call_later(30, lambda: None)
        alive = await asyncio.create_task(request())
        await asyncio.sleep(0)  # the callback that resumed this coroutine held the finished task
        assert any(handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]
        gc.collect()
        still_alive = alive() is not None
        traffic_timer.cancel()
        return still_alive

    return asyncio.run(main())


def test_a_finished_request_leaves_nothing_alive_on_the_event_loop() -> None:
    assert not request_state_alive_after(Deadline)


def test_asyncio_timeout_keeps_the_request_alive_which_is_why_deadline_exists() -> None:
    """If a later Python stops doing this, Deadline can go: asyncio.timeout would do."""
    assert request_state_alive_after(asyncio.timeout)


def hanging_app(request_timeout_s: float) -> TestClient:
    # auth is not what is tested here
    app = create_app(Settings(auth_disabled=True, request_timeout_s=request_timeout_s))

    @app.get("/v1/hang")
    async def hang() -> dict[str, str]:
        await asyncio.sleep(30)
        return {}

    @app.get("/v1/quick")
    async def quick() -> dict[str, str]:
        return {"answer": "in time"}

    return TestClient(app)


def test_a_request_over_the_deadline_gets_the_openai_504() -> None:
    with hanging_app(request_timeout_s=0.2) as client:
        started = time.monotonic()
        response = client.get("/v1/hang")
        assert time.monotonic() - started < 5
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "server_error"
        assert client.get("/v1/quick").json() == {"answer": "in time"}
