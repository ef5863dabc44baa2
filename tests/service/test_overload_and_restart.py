"""Overload, oversized requests and a killed worker, against a real `bentoml serve` with small
batches and a short queue (so that a few clients overload it)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.servers import stop_server
from tests.fixtures.servers import API_KEYS, RunningServer, start_ready_server, worker_pids

pytestmark = pytest.mark.slow

MODEL = "tiny-koala"
MAX_BATCH_TEXTS = 4
MAX_QUEUED_REQUESTS = 3


@pytest.fixture(scope="module")
def small_server(
    catalog_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with small batches and a short queue, so that a few clients overload it."""
    directory = tmp_path_factory.mktemp("small-server")
    process, base_url = start_ready_server(
        catalog_file,
        directory,
        MODERATION_MAX_BATCH_TEXTS=str(MAX_BATCH_TEXTS),
        MODERATION_MAX_QUEUED_REQUESTS=str(MAX_QUEUED_REQUESTS),
        MODERATION_MAX_QUEUED_TEXTS="16",
    )
    try:
        yield RunningServer(base_url, API_KEYS[0], directory / "server.log", [], process.pid)
    finally:
        stop_server(process)


def post(client: httpx.Client, texts: list[str] | str) -> httpx.Response:
    return client.post("/v1/moderations", json={"model": MODEL, "input": texts})


def assert_unavailable(response: httpx.Response) -> None:
    """503, told when to retry, with the OpenAI error body."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["type"] == "server_error"


def batch_calls(client: httpx.Client) -> float:
    """Model calls of tiny-koala so far, from the batch-size histogram."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("moderation_batch_size_count") and f'model="{MODEL}"' in line
    )


def test_a_request_larger_than_one_batch_is_scored_like_its_texts_alone(
    small_server: RunningServer,
) -> None:
    texts = [f"text {index} " * (1 + 3 * index) for index in range(2 * MAX_BATCH_TEXTS)]
    with small_server.client() as client:
        calls_before = batch_calls(client)
        together = post(client, texts)
        calls_after = batch_calls(client)
        alone = [post(client, text).json()["results"][0] for text in texts]
    assert together.status_code == 200
    assert calls_after - calls_before >= 2  # more texts than one batch holds
    for result, single in zip(together.json()["results"], alone, strict=True):
        assert result["flagged"] == single["flagged"]
        assert result["category_scores"] == pytest.approx(single["category_scores"], abs=1e-5)


def test_beyond_the_queue_bound_load_is_shed_with_503_and_retry_after_then_it_recovers(
    small_server: RunningServer,
) -> None:
    clients = 48
    texts = ["a long text to score, " * 90] * 8  # 8 texts of ~2000 characters each
    with small_server.client() as client, ThreadPoolExecutor(max_workers=clients) as pool:
        responses = list(pool.map(lambda _: post(client, texts), range(clients)))
        after = post(client, "the load is gone")  # nothing else queued now
    statuses = sorted({response.status_code for response in responses})
    assert statuses == [200, 503], statuses  # some served, the rest shed; never 500 or a hang
    for response in responses:
        if response.status_code == 503:
            assert_unavailable(response)
            assert response.json()["error"]["code"] == "overloaded"
    assert after.status_code == 200
    shed = [
        json.loads(line)
        for line in small_server.logs().splitlines()
        if line.startswith("{") and '"status":503' in line
    ]
    assert shed and all(line["error"].startswith("Overloaded: ") for line in shed)


def test_a_killed_worker_is_unready_at_once_never_hangs_a_request_and_comes_back(
    small_server: RunningServer,
) -> None:
    """Runs last in this module: the server restarts its worker."""
    (worker,) = worker_pids(small_server.pid)
    with small_server.client() as client:  # 60 s timeout
        assert post(client, "before").status_code == 200
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        readiness: list[tuple[float, int | str]] = []
        answers: list[httpx.Response | str] = []
        while time.monotonic() - killed < 150:
            try:
                status: int | str = client.get("/readyz", timeout=10).status_code
            except httpx.TimeoutException:
                status = "timeout"
            except httpx.TransportError:
                status = "refused or reset"
            readiness.append((time.monotonic() - killed, status))
            try:
                answers.append(post(client, "during the restart"))
            except httpx.TimeoutException:
                pytest.fail(f"a request hung for 60 s after the kill: {readiness}")
            except httpx.TransportError as error:
                answers.append(type(error).__name__)  # the connection of the killed worker
            if status == 200 and len(readiness) > 1:
                break
            time.sleep(0.2)
        assert readiness[-1][1] == 200, readiness  # came back by itself
        assert readiness[0][1] != 200, readiness  # not ready from the first probe on
        assert worker_pids(small_server.pid) != [worker]
        assert post(client, "after").status_code == 200
    for answer in answers:
        if isinstance(answer, httpx.Response) and answer.status_code != 200:
            assert_unavailable(answer)
