"""Graceful shutdown of a serving worker: on SIGTERM, stop listening at once, then drain.

`bentoml serve` (a circus arbiter) passes SIGTERM to its worker, where uvicorn stops accepting and
waits for the requests in progress before the app shuts down. Two things it leaves undone:
- the listening socket is shared with the arbiter, which keeps it open until every worker has
  exited, so new connections would wait in its backlog and be reset at exit. Shutting the socket
  down in the kernel makes them fail at once with "connection refused";
- readiness must turn false at once (`on_drain`), for any probe that still gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any


def drain_on_sigterm(on_drain: Callable[[], None]) -> None:
    """Install a SIGTERM handler that runs before uvicorn's own; call from the event loop thread.

    uvicorn's handler is the bound `Server.handle_exit`: its server objects are closed first, so
    that the event loop stops polling the socket before the kernel stops listening on it.
    """
    previous = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    uvicorn_server = getattr(previous, "__self__", None)

    def handle(signum: int, frame: FrameType | None) -> None:
        on_drain()
        loop.call_soon_threadsafe(_stop_listening, getattr(uvicorn_server, "servers", []))
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handle)


def _stop_listening(servers: list[Any]) -> None:
    for server in servers:
        # fromfd duplicates the descriptor: it outlives the server's own, closed just below
        listeners = [socket.fromfd(s.fileno(), s.family, s.type) for s in server.sockets]
        server.close()
        for listener in listeners:
            with listener, contextlib.suppress(OSError):  # OSError: already closed
                listener.shutdown(socket.SHUT_RD)  # the socket itself, in every process
