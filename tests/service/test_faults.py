"""One pod's failure model against real `bentoml serve` processes: overload, oversized requests,
SIGTERM with requests in flight, a killed worker (outside and inside a container)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.auth import hash_key
from tests.fixtures.servers import (
    API_KEYS,
    RunningServer,
    server_env,
    start_server,
    stop_server,
    wait_until_ready,
    worker_pids,
)

pytestmark = pytest.mark.slow

MODEL = "tiny-koala"
MAX_BATCH_TEXTS = 4
MAX_QUEUED_REQUESTS = 3


def serve(catalog: Path, directory: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    env = server_env(catalog, MODERATION_API_KEY_HASHES=hash_key(API_KEYS[0]), **settings)
    process, port = start_server(env, directory / "server.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, base_url, directory / "server.log")
    except RuntimeError:
        stop_server(process)
        raise
    return process, base_url


@pytest.fixture(scope="module")
def small_server(
    catalog_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with small batches and a short queue, so that a few clients overload it."""
    directory = tmp_path_factory.mktemp("small-server")
    process, base_url = serve(
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


def hold_requests(
    base_url: str, count: int
) -> tuple[list[object], threading.Event, list[threading.Thread]]:
    """`count` requests whose bodies stop half way until the returned event is set."""
    results: list[object] = [None] * count
    started = threading.Barrier(count + 1, timeout=60)
    release = threading.Event()

    def held(index: int) -> None:
        def body() -> Iterator[bytes]:
            yield b'{"model": "tiny-koala", '
            started.wait()
            release.wait(timeout=60)
            yield b'"input": "held back %d"}' % index

        headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
        try:
            response = httpx.post(
                f"{base_url}/v1/moderations", content=body(), headers=headers, timeout=60
            )
            results[index] = response.status_code
        except httpx.HTTPError as error:
            results[index] = repr(error)

    threads = [threading.Thread(target=held, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    started.wait()
    return results, release, threads


def test_sigterm_refuses_new_requests_at_once_and_answers_every_accepted_one(
    catalog_file: Path, tmp_path: Path
) -> None:
    process, base_url = serve(catalog_file, tmp_path)
    try:
        results, release, threads = hold_requests(base_url, 24)
        time.sleep(0.5)  # every held request is in the handler, reading its body
        process.send_signal(signal.SIGTERM)  # to the main process only, as the kubelet does
        signalled = time.monotonic()
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # not ready, and no new work, from now on
            httpx.get(f"{base_url}/readyz", timeout=5)
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{base_url}/v1/moderations", json={"input": "new"}, timeout=5)
        assert time.monotonic() - signalled < 5  # refused at once, not after a timeout
        release.set()
        for thread in threads:
            thread.join(timeout=60)
        assert results == [200] * len(results)
        assert process.wait(timeout=30) == 0  # exits once drained
    finally:
        release.set()
        stop_server(process)
    assert '"status":5' not in (tmp_path / "server.log").read_text()


def test_inside_a_container_a_dead_worker_fails_liveness_so_the_kubelet_restarts_the_pod(
    catalog_file: Path, tmp_path: Path
) -> None:
    """BentoML respawns no worker in a container (BENTOML_CONTAINERIZED): the pod cannot recover
    by itself, and its liveness probe (GET /livez, 5 s timeout: infra/workload.py) must fail."""
    process, base_url = serve(catalog_file, tmp_path, BENTOML_CONTAINERIZED="true")
    try:
        (worker,) = worker_pids(process.pid)
        assert httpx.get(f"{base_url}/livez", timeout=5).status_code == 200
        os.kill(worker, signal.SIGKILL)
        time.sleep(2)
        for _ in range(3):  # the probe's failureThreshold
            if process.poll() is not None:
                break  # or bentoml serve exits, and the kubelet restarts the container
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{base_url}/livez", timeout=5)
    finally:
        stop_server(process)
