"""The per-API-key rate limits: token buckets per key id, in this server process, one counting
requests and one counting characters (the model's work grows with them, not with requests).

The edge's per-key rule throttles on the raw `Authorization` value, which a client can spell many
ways (`bearer`, `BEARER`, several spaces) for one key; here the bucket is the key's id, after the
header is parsed and the key checked, so every spelling shares one bucket. Buckets live in the
process (one per configured key, so memory is bounded): a pod with one API worker enforces the
limit per pod.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyRateLimiter:
    """`per_minute` units (requests, characters) a minute per key, with bursts of up to `burst`.

    A cost larger than the burst passes when the bucket is full and leaves it in debt, so the
    largest request the API accepts is never refused for good, and the key waits for it after.
    """

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key_id: str, cost: float = 1.0) -> float | None:
        """Take `cost` tokens: None when allowed, else the seconds until they are available."""
        now = self._clock()
        bucket = self._buckets.setdefault(key_id, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        needed = min(cost, self._burst)
        if bucket.tokens >= needed:
            bucket.tokens -= cost
            return None
        return (needed - bucket.tokens) / self._rate


def retry_after(wait_s: float) -> str:
    """The `Retry-After` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
