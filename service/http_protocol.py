"""Strict HTTP/1.1 framing for the server's own socket: uvicorn's h11 protocol, with the limits a
front proxy (nginx, Envoy) would otherwise set, so that the pod holds on its own (the pod network
and `make serve` have no edge in front).

- A request's line and headers must arrive within `header_timeout_s` of the connection opening or
  of the previous response; so must the rest of a body the API answered without reading (a 401
  or 413 to an upload). Data arriving does not restart the clock (nginx `client_header_timeout`,
  Envoy `request_headers_timeout`): a client trickling bytes is cut off, 408 when a request
  had begun.
- The request head: URL at most MAX_URL_BYTES (414), at most MAX_HEADERS headers, each line at
  most MAX_HEADER_LINE_BYTES and all of them MAX_HEAD_BYTES (431, RFC 6585).
- Framing: Content-Length with Transfer-Encoding, and Transfer-Encoding in HTTP/1.0, are refused
  (400; RFC 9112 section 6.1: a front end and this server could disagree on where the next
  request starts); HTTP versions other than 1.0 and 1.1 get 505.
- X-Forwarded-For and X-Forwarded-Proto are trusted from no peer unless FORWARDED_ALLOW_IPS
  (uvicorn's own setting) names it: uvicorn trusts loopback peers by default, so any local
  process could set the client address the log records.
- A WebSocket upgrade is answered as plain HTTP by the app (the API has no WebSocket route, and
  RFC 9110 section 7.8 lets a server ignore Upgrade), so it gets the app's headers and log line.

Every refusal is answered with the OpenAI error body, the security headers, a request id and
`Connection: close`, counted in `moderation_refused_requests_total{reason}` and logged as one
JSON line (sampled under a flood), never uvicorn's plain-text warning.

BentoML builds uvicorn's Config itself and passes no protocol, so `install` names this class as
uvicorn's "auto" HTTP protocol; the service module calls it at import, before the worker builds
its server.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.config import HTTP_PROTOCOLS, Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from service.api import REQUEST_ID_HEADER, SECURITY_HEADERS
from service.metrics import REFUSED
from service.request_log import log_refused
from service.schemas import ErrorBody, ErrorDetail

MAX_URL_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 32 * 1024
SUPPORTED_VERSIONS = (b"1.0", b"1.1")
# uvicorn's own warnings for what this protocol answers and logs itself.
_UVICORN_WARNINGS = (
    "Invalid HTTP request received.",
    "Unsupported upgrade request.",
    "No supported WebSocket library detected",
)

_header_timeout_s = 10.0


class Refused(h11.RemoteProtocolError):
    """A request this server will not take, with the reason it is counted under."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message, error_status_hint=status)
        self.reason = reason


def check_head(request: h11.Request) -> None:
    """Raise Refused when the request line or headers break a limit or frame ambiguously."""
    if request.http_version not in SUPPORTED_VERSIONS:
        raise Refused("Only HTTP/1.0 and HTTP/1.1 are supported.", 505, "http_version")
    if len(request.target) > MAX_URL_BYTES:
        raise Refused(f"The URL is longer than {MAX_URL_BYTES} bytes.", 414, "url_too_long")
    raw = request.headers.raw_items()
    if len(raw) > MAX_HEADERS:
        raise Refused(f"More than {MAX_HEADERS} headers.", 431, "too_many_headers")
    lines = [len(name) + len(value) + 4 for name, value in raw]  # "name: value\r\n"
    if max(lines, default=0) > MAX_HEADER_LINE_BYTES:
        message = f"A header line is longer than {MAX_HEADER_LINE_BYTES} bytes."
        raise Refused(message, 431, "header_too_large")
    if sum(lines) + len(request.target) > MAX_HEAD_BYTES:
        raise Refused(f"The headers are larger than {MAX_HEAD_BYTES} bytes.", 431, "head_too_large")
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names and (
        b"content-length" in names or request.http_version == b"1.0"
    ):
        raise Refused(
            "Send Content-Length or Transfer-Encoding (HTTP/1.1 only), not both.",
            400,
            "ambiguous_framing",
        )


class _StrictConnection(h11.Connection):
    """h11's server side, checking each request head as it is parsed and keeping the last
    protocol error, which uvicorn drops before answering it."""

    def __init__(self, on_head: Callable[[], None]) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.on_head = on_head
        self.refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                self.on_head()
                check_head(event)
        except h11.RemoteProtocolError as error:
            self.refusal = error
            raise
        return event


# h11's own refusals, by the status it suggests: (reason, message).
_H11_REFUSALS = {
    431: ("head_too_large", f"The headers are larger than {MAX_HEAD_BYTES} bytes."),
    501: ("transfer_encoding", "Only Transfer-Encoding: chunked is supported."),
}
_MALFORMED = ("malformed", "The request is not valid HTTP.")


def _refusal(error: h11.RemoteProtocolError | None) -> tuple[int, str, str]:
    """(status, reason, message) for a protocol error."""
    if isinstance(error, Refused):
        return error.error_status_hint, error.reason, str(error)
    status = error.error_status_hint if error is not None else 400
    return (status, *_H11_REFUSALS.get(status, _MALFORMED))


class StrictH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits and the deadline above."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _StrictConnection(on_head=self._head_received)
        self.ws_protocol_class = None  # upgrades are answered as plain HTTP
        self._deadline: asyncio.TimerHandle | None = None
        self._request_begun = False  # bytes of a request arrived since the deadline was set

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._set_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._request_begun = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        # Before uvicorn goes on to a pipelined request, whose head then clears it.
        self._set_deadline()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a protocol error: the status and reason of the error instead."""
        self._refuse(*_refusal(self.conn.refusal))

    def _head_received(self) -> None:
        """The app takes over: its body deadline (408) and request deadline (504) apply."""
        self._clear_deadline()

    def _set_deadline(self) -> None:
        self._clear_deadline()
        self._request_begun = False
        self._deadline = self.loop.call_later(_header_timeout_s, self._too_slow)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.conn.our_state is h11.DONE:  # answered; the rest of its body did not come
            self._count_and_log(408, "body_after_response_timeout", uuid.uuid4().hex)
            self.transport.close()
        elif self._request_begun:
            message = f"The request's headers did not arrive within {_header_timeout_s:g} s."
            self._refuse(408, "header_timeout", message)
        else:  # an idle connection: closed without a word, as keep-alive would
            self.transport.close()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer with the OpenAI error body, count, log, and close the connection."""
        request_id = uuid.uuid4().hex
        error_type = "server_error" if status >= 500 else "invalid_request_error"
        body = json.dumps(
            ErrorBody(
                error=ErrorDetail(message=message, type=error_type, param=None, code=reason)
            ).model_dump()
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
            REQUEST_ID_HEADER: request_id,
            **SECURITY_HEADERS,
        }
        head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)
        self.transport.close()
        self._count_and_log(status, reason, request_id)

    def _count_and_log(self, status: int, reason: str, request_id: str) -> None:
        REFUSED.labels(reason=reason).inc()
        log_refused(
            reason=reason,
            status=status,
            client_ip=self.client[0] if self.client else None,
            request_id=request_id,
        )


class _DropAnsweredWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_UVICORN_WARNINGS)


def install(header_timeout_s: float) -> None:
    """Make StrictH11Protocol the protocol of every uvicorn server this process starts."""
    global _header_timeout_s
    _header_timeout_s = header_timeout_s
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")  # read when BentoML builds uvicorn's Config
    HTTP_PROTOCOLS["auto"] = f"{__name__}:{StrictH11Protocol.__name__}"
    logging.getLogger("uvicorn.error").addFilter(_DropAnsweredWarnings())
