"""Service fixtures: a model store with the offline default and tiny transformers models, a test
catalog naming them, and one real `bentoml serve` process shared by the session's API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from service.auth import hash_key
from service.model_import import import_model
from service.store import ensure_default
from tests.fixtures.tiny_models import build_tiny_deberta

REPO_ROOT = Path(__file__).resolve().parents[2]
BENTOML_CLI = str(Path(sys.executable).parent / "bentoml")
API_KEYS = ("test-key-current", "test-key-next")  # two at once: a rotation in progress
LIMITS = {"MODERATION_MAX_INPUTS": "8", "MODERATION_MAX_INPUT_CHARS": "2000"}
MAX_BODY_BYTES = 65_536
KOALA_CATEGORIES = {
    "S": "sexual",
    "H": "hate",
    "V": "violence",
    "HR": "harassment",
    "SH": "self-harm",
    "S3": "sexual/minors",
    "H2": "hate/threatening",
    "V2": "violence/graphic",
    "OK": None,
}


@dataclass(frozen=True)
class StoredModels:
    default: str
    koala: str
    toxic: str


@pytest.fixture(scope="session")
def stored_models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StoredModels:
    """The offline default and two tiny DeBERTa models in the session's model store."""
    toxic_dir = build_tiny_deberta(
        tmp_path_factory.mktemp("tiny-toxic"), labels=("neutral", "toxic"), seed=1
    )
    return StoredModels(
        default=str(ensure_default()),
        koala=str(import_model(str(tiny_model_dir), name="tiny-koala").tag),
        toxic=str(import_model(str(toxic_dir), name="tiny-toxic").tag),
    )


def catalog_document(models: StoredModels) -> dict[str, object]:
    """The repository catalog's default model plus the two tiny models, side by side."""
    shipped = yaml.safe_load((REPO_ROOT / "service" / "catalog.yaml").read_text())
    return {
        "default_model": shipped["default_model"],
        "models": [
            *shipped["models"],
            {
                "name": "tiny-koala",
                "backend": "transformers",
                "tag": models.koala,
                "labels": KOALA_CATEGORIES,
                "thresholds": {"self-harm": 0.3},
                "default_threshold": 0.2,
            },
            {
                "name": "tiny-toxic",
                "backend": "transformers",
                "tag": models.toxic,
                "labels": {"neutral": None, "toxic": "harassment"},
            },
        ],
    }


@pytest.fixture(scope="session")
def catalog_file(stored_models: StoredModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog_document(stored_models), sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    base_url: str
    api_key: str
    log_path: Path
    readyz_statuses: list[int]  # what /readyz answered while the server came up

    def client(self, api_key: str | None = "", **kwargs: object) -> httpx.Client:
        """An HTTP client; api_key "" means the server's valid key, None means no header."""
        key = self.api_key if api_key == "" else api_key
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def server_env(catalog: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MODERATION_") and key != "BENTOML_CONTAINERIZED"
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        MODERATION_CATALOG=str(catalog),
        MODERATION_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        **LIMITS,
    )
    env.update(overrides)
    return env


def start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BENTOML_CLI, "serve", "service.app:Moderation", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that stopping it stops its workers too
        )
    return process, port


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> list[int]:
    """Poll /readyz until 200; return every status seen (connection refused is not a status)."""
    statuses: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited early:\n{log.read_text()[-5000:]}")
        try:
            status = httpx.get(f"{base_url}/readyz", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        statuses.append(status)
        if status == 200:
            return statuses
        time.sleep(0.1)
    raise RuntimeError(f"server not ready in time:\n{log.read_text()[-5000:]}")


@pytest.fixture(scope="session")
def server(catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real `bentoml serve service.app:Moderation` with API keys and the test catalog."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = server_env(
        catalog_file, MODERATION_API_KEY_HASHES=",".join(hash_key(key) for key in API_KEYS)
    )
    process, port = start_server(env, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        statuses = wait_until_ready(process, base_url, log_path)
        yield RunningServer(base_url, API_KEYS[0], log_path, statuses)
    finally:
        stop_server(process)
