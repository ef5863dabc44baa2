"""SIGTERM with requests in flight, and a dead worker inside a container, against real
`bentoml serve` processes (each test its own: both end the server)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import stop_server
from tests.fixtures.servers import API_KEYS, start_ready_server, worker_pids

pytestmark = pytest.mark.slow


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
    process, base_url = start_ready_server(catalog_file, tmp_path)
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
    process, base_url = start_ready_server(catalog_file, tmp_path, BENTOML_CONTAINERIZED="true")
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
