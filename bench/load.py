"""Closed-loop load generator for `POST /v1/moderations`, used by `make bench` and tests/perf.

`concurrency` clients each send their next request as soon as the previous one is answered, for
at most `duration_s` seconds and `max_requests` requests: the question is how much one server
completes at a given concurrency and how long each request waits. Every answer is checked (status,
OpenAI shape, one result per input). When the server exports the kit's batch-size histogram on
/metrics (texts per model call), the level also reports how many requests were merged per call.

Only loopback addresses are accepted: this tool must never load someone else's server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ValidationError, computed_field

from service.categories import CATEGORIES
from service.schemas import ModerationResponse

MODERATIONS_PATH = "/v1/moderations"
BATCH_SIZE_METRIC = "moderation_batch_size"
TRANSPORT_ERROR = "transport-error"

# Sentences of the lengths chat messages have, clean and abusive, so the model does real work.
SAMPLE_TEXTS: tuple[str, ...] = (
    "Have a nice day!",
    "You are an idiot and nobody likes you.",
    "Thanks for the quick reply, the package arrived this morning in perfect condition.",
    "I can't believe how stupid this whole discussion has become, shut up already.",
    "The meeting is moved to Thursday at 10:00; please bring the quarterly figures with you.",
    "What a load of crap, you absolute moron.",
    "Could you recommend a good book about the history of the Roman empire for a beginner?",
    "Honestly this is the best pizza place in town, the crust is thin and the sauce is fresh.",
)


class LatencyMs(BaseModel):
    p50: float
    p95: float
    p99: float
    max: float


class BatchSizes(BaseModel):
    """Texts per model call over one level (one text per request: requests per call)."""

    batches: int
    requests: int
    mean: float


class LevelResult(BaseModel):
    concurrency: int
    requests: int = 0  # sent, whatever the outcome
    ok: int = 0  # 200 with a well-formed body
    malformed: int = 0  # 200 whose body is not a valid moderation response for its input
    statuses: dict[str, int]  # HTTP status (or transport-error) -> count
    duration_s: float
    throughput_rps: float  # ok / duration_s
    latency_ms: LatencyMs  # of every answered request
    batch_sizes: BatchSizes | None = None  # None: the server exports no batch-size metric

    @computed_field
    @property
    def errors(self) -> int:
        """Requests that did not get a well-formed 200."""
        return self.requests - self.ok


def require_loopback(base_url: str) -> None:
    """Raise unless `base_url` names a loopback host."""
    host = urlsplit(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to load {base_url}: only loopback addresses may be targeted")


def is_well_formed(body: bytes, inputs: int) -> bool:
    """A valid OpenAI moderation response with one result per input and every category."""
    try:
        response = ModerationResponse.model_validate_json(body)
    except ValidationError:
        return False
    return len(response.results) == inputs and all(
        set(result.categories) == set(CATEGORIES) == set(result.category_scores)
        for result in response.results
    )


def batch_totals(metrics_text: str) -> tuple[float, float] | None:
    """(requests, batches) summed over the batch-size histogram's series, None if absent."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == BATCH_SIZE_METRIC:
            total = sum(s.value for s in family.samples if s.name == BATCH_SIZE_METRIC + "_sum")
            count = sum(s.value for s in family.samples if s.name == BATCH_SIZE_METRIC + "_count")
            return total, count
    return None


async def _scrape_batch_totals(session: aiohttp.ClientSession) -> tuple[float, float] | None:
    async with session.get("/metrics") as response:
        if response.status != 200:
            return None
        return batch_totals(await response.text())


def _batch_sizes(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> BatchSizes | None:
    if after is None:
        return None
    # A labelled histogram appears at its first batch: absent before means nothing counted yet.
    before = before or (0.0, 0.0)
    requests, batches = (round(end - start) for start, end in zip(before, after, strict=True))
    return BatchSizes(
        batches=batches, requests=requests, mean=requests / batches if batches else 0.0
    )


async def run_level(
    base_url: str,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    texts: Sequence[str] = SAMPLE_TEXTS,
    model: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_timeout_s: float = 30.0,
) -> LevelResult:
    """Load `base_url` with `concurrency` clients, one text per request (to `model`, else the
    default), until time or count runs out (a request in flight at the deadline is awaited)."""
    require_loopback(base_url)
    named = {"model": model} if model else {}
    bodies = [json.dumps({"input": text, **named}).encode() for text in texts]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    malformed = 0
    sequence = itertools.count()
    session = aiohttp.ClientSession(
        base_url,
        headers={"Content-Type": "application/json", **(headers or {})},
        connector=aiohttp.TCPConnector(limit=concurrency + 1),
        timeout=aiohttp.ClientTimeout(total=request_timeout_s),
    )
    async with session:
        before = await _scrape_batch_totals(session)
        started = time.perf_counter()
        deadline = started + duration_s

        async def client() -> None:
            nonlocal malformed
            while time.perf_counter() < deadline and (index := next(sequence)) < max_requests:
                sent = time.perf_counter()
                try:
                    async with session.post(
                        MODERATIONS_PATH, data=bodies[index % len(bodies)]
                    ) as response:
                        body = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    statuses[TRANSPORT_ERROR] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[str(response.status)] += 1
                if response.status == 200 and not is_well_formed(body, inputs=1):
                    malformed += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        after = await _scrape_batch_totals(session)
    sent_total = sum(statuses.values())
    ok = statuses["200"] - malformed
    p50, p95, p99, worst = (
        np.percentile(np.array(latencies) * 1000, [50, 95, 99, 100]) if latencies else [0.0] * 4
    )
    return LevelResult(
        concurrency=concurrency,
        requests=sent_total,
        ok=ok,
        malformed=malformed,
        statuses=dict(sorted(statuses.items())),
        duration_s=round(elapsed, 3),
        throughput_rps=round(ok / elapsed, 1),
        latency_ms=LatencyMs(
            p50=round(float(p50), 2),
            p95=round(float(p95), 2),
            p99=round(float(p99), 2),
            max=round(float(worst), 2),
        ),
        batch_sizes=_batch_sizes(before, after),
    )
