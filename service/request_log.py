"""One JSON line per API request on stdout, in the shape Cloud Logging parses.

Fields: severity, message, httpRequest, trace (when the load balancer sent one), and the request's
facts: request id, model, model tag, number of inputs, total characters, number flagged, latency.
The input text is never logged. What the client sends (path, method, User-Agent, trace ids) is
cut to a bounded length, and the line is ASCII-only JSON: U+2028 and other line or control
characters arrive escaped, so a client cannot split or forge log lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

MAX_LOGGED_CHARS = 256
TRUNCATED = "..."
# Lines a second about refused traffic, per reason; beyond that they are counted, and the next
# line written says how many were left out (a flood must not cost a line each).
REFUSED_LINES_PER_S = 10

_logger = logging.getLogger("moderation.requests")
_logger.propagate = False
if not _logger.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(logging.INFO)


def bounded(value: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`value` cut to `limit` characters, marked when cut."""
    return value if len(value) <= limit else value[: limit - len(TRUNCATED)] + TRUNCATED


def trace_fields(headers: dict[str, str]) -> dict[str, str]:
    """Cloud Logging's trace/span fields from X-Cloud-Trace-Context or W3C traceparent."""
    trace_id = span_id = ""
    if cloud := headers.get("x-cloud-trace-context"):
        trace_id, _, rest = cloud.partition("/")
        span_id = rest.split(";", 1)[0]
    elif parent := headers.get("traceparent"):
        parts = parent.split("-")
        if len(parts) == 4:
            trace_id, span_id = parts[1], parts[2]
    if not (trace_id.isascii() and trace_id.isalnum() and len(trace_id) <= 64):
        return {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    fields = {
        "logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}"
        if project
        else trace_id
    }
    if span_id.isascii() and span_id.isalnum() and len(span_id) <= 32:
        fields["logging.googleapis.com/spanId"] = span_id
    return fields


def severity(status: int) -> str:
    if status >= 500:
        return "ERROR"
    return "WARNING" if status >= 400 else "INFO"


def log_request(
    *,
    method: str,
    path: str,
    status: int,
    latency_s: float,
    headers: dict[str, str],
    client_ip: str | None,
    response_bytes: int,
    facts: dict[str, Any],
) -> None:
    """Write the line; `facts` holds what the handler learned (never the texts themselves).

    Client errors (4xx) are sampled per status under a flood, like refusals (`_refusals`):
    a keyless client must not buy a log line for each request it sends.
    """
    left_out = _refusals.admit(f"status {status}") if 400 <= status < 500 else 0
    if left_out is None:
        return
    method, path = bounded(method, 16), bounded(path)
    request_size = headers.get("content-length", "0")
    if not (request_size.isascii() and request_size.isdecimal() and len(request_size) <= 20):
        request_size = "0"
    entry: dict[str, Any] = {
        "severity": severity(status),
        "message": f"{method} {path} {status}",
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": path,
            "status": status,
            "requestSize": request_size,
            "responseSize": str(response_bytes),
            "userAgent": bounded(headers.get("user-agent", "")),
            "remoteIp": client_ip or "",
            "latency": f"{latency_s:.6f}s",
        },
        **trace_fields(headers),
        **facts,
        "latency_ms": round(latency_s * 1000, 3),
    }
    if left_out:
        entry["left_out"] = left_out
    _logger.info(json.dumps(entry, ensure_ascii=True, separators=(",", ":")))


def log_event(severity_name: str, message: str, **fields: Any) -> None:
    """A JSON line about the service itself (not a request), in the same shape."""
    entry = {"severity": severity_name, "message": message, **fields}
    _logger.info(json.dumps(entry, ensure_ascii=True, separators=(",", ":")))


class _Sampler:
    """Up to `lines_per_s` lines per reason each second; counts the ones left out."""

    def __init__(self, lines_per_s: int) -> None:
        self.lines_per_s = lines_per_s
        self._second: dict[str, int] = {}
        self._written: dict[str, int] = {}
        self._left_out: dict[str, int] = {}

    def admit(self, reason: str) -> int | None:
        """None: leave this line out; else the number left out since the last one written."""
        second = int(time.monotonic())
        if self._second.get(reason) != second:
            self._second[reason], self._written[reason] = second, 0
        if self._written[reason] >= self.lines_per_s:
            self._left_out[reason] = self._left_out.get(reason, 0) + 1
            return None
        self._written[reason] += 1
        return self._left_out.pop(reason, 0)


_refusals = _Sampler(REFUSED_LINES_PER_S)


def limit_client_error_lines(lines_per_s: int) -> None:
    """The sampling rate of 4xx and refusal lines (MODERATION_CLIENT_ERROR_LINES_PER_S)."""
    _refusals.lines_per_s = lines_per_s


def log_refused(*, reason: str, status: int, client_ip: str | None, **fields: Any) -> None:
    """One line for a request refused before the API saw it (sampled under a flood)."""
    left_out = _refusals.admit(reason)
    if left_out is None:
        return
    entry: dict[str, Any] = {
        "severity": severity(status),
        "message": f"refused {status}: {reason}",
        "httpRequest": {"status": status, "remoteIp": client_ip or ""},
        "reason": reason,
        **fields,
    }
    if left_out:
        entry["left_out"] = left_out
    _logger.info(json.dumps(entry, ensure_ascii=True, separators=(",", ":")))
