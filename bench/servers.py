"""Start, wait for and stop real server processes on loopback: `bentoml serve` and the MVP
baseline. The one way the benchmark and the tests run a served process (the tests' fixtures in
tests/fixtures/servers.py build on it; bench never imports tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
BENTOML_CLI = str(Path(sys.executable).parent / "bentoml")
SERVICE = "service.app:Moderation"
LOOPBACK = "127.0.0.1"
# The benchmark's base-sized model loads in about a minute on two shared cores.
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def server_home(store: Path, parent: Path) -> Path:
    """A BENTOML_HOME of the server's own that shares `store`'s model and Bento stores.

    `bentoml serve` empties `$BENTOML_HOME/prometheus_multiproc_dir` when it starts: servers
    sharing one home would wipe each other's metrics.
    """
    home = Path(tempfile.mkdtemp(prefix="bentoml-home-", dir=parent))
    for store_dir in ("models", "bentos"):
        (store / store_dir).mkdir(parents=True, exist_ok=True)
        (home / store_dir).symlink_to(store / store_dir, target_is_directory=True)
    return home


def start_process(
    command: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT
) -> subprocess.Popen[bytes]:
    """`command` in a session of its own (so that stopping it stops its workers too), its output
    to `log_path`."""
    with log_path.open("wb") as log:
        # The commands are built from constants, free ports and tags, never from user text.
        return subprocess.Popen(  # noqa: S603
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_server(
    env: dict[str, str], log_path: Path, target: str = SERVICE, cwd: Path = REPO_ROOT
) -> tuple[subprocess.Popen[bytes], int]:
    """`bentoml serve <target>` on a free loopback port with a home of its own over env's store
    (BentoML's default home where env names none); target may be a Bento tag."""
    port = free_port()
    store = Path(env.get("BENTOML_HOME") or Path.home() / "bentoml")
    command = [BENTOML_CLI, "serve", target, "--host", LOOPBACK, "--port", str(port)]
    home = server_home(store, log_path.parent)
    return start_process(command, {**env, "BENTOML_HOME": str(home)}, log_path, cwd), port


def wait_until_ready(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, probe: str = "/readyz"
) -> list[int]:
    """Poll `probe` until 200; return every status seen (connection refused is not a status)."""
    statuses: list[int] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{_name(process)} exited early:\n{_tail(log_path)}")
        try:
            status = httpx.get(f"{base_url}{probe}", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        statuses.append(status)
        if status == 200:
            return statuses
        time.sleep(0.1)
    raise RuntimeError(f"{_name(process)} not ready in time:\n{_tail(log_path)}")


def stop_server(*processes: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM each server's process group at once; SIGKILL what is still up after the grace."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in running:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def ready(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, probe: str = "/readyz"
) -> Iterator[list[int]]:
    """The started `process`, once `probe` answers 200 (yields the statuses seen); stopped when
    the block ends or the wait fails."""
    try:
        yield wait_until_ready(process, base_url, log_path, probe)
    finally:
        stop_server(process)


def _name(process: subprocess.Popen[bytes]) -> str:
    """`bentoml serve`, `python -m`: what the log belongs to."""
    return " ".join(Path(str(arg)).name for arg in process.args[:2])


def _tail(log_path: Path) -> str:
    return log_path.read_text(encoding="utf-8", errors="replace")[-5000:]
