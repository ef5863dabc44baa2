"""Start-up behaviour of real `bentoml serve` processes: refusing to run open, readiness."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import bentoml
import httpx
import pytest
import yaml

from bench.servers import (
    REPO_ROOT,
    free_port,
    server_home,
    start_server,
    stop_server,
    wait_until_ready,
)
from service.auth import hash_key
from service.backends import SKLEARN_PIPELINE_FILE
from tests.fixtures.catalog import StoredModels, catalog_document
from tests.fixtures.servers import RunningServer, server_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("key_settings", "message"),
    [
        ({}, "no API keys configured: set MODERATION_API_KEY_HASHES"),
        ({"BENTOML_CONTAINERIZED": "true"}, "no API keys configured"),  # as in a Bento image
        ({"MODERATION_API_KEY_HASHES": "plaintext-key"}, "API key hash #1 is not"),
        ({"MODERATION_AUTH_DISABLED": "1", "MODERATION_MAX_INPUTS": "0"}, "MODERATION_MAX_INPUTS"),
    ],
    ids=["no-keys", "no-keys-in-container", "malformed-hash", "invalid-limit"],
)
def test_server_with_unusable_settings_refuses_to_start(
    catalog_file: Path, tmp_path: Path, key_settings: dict[str, str], message: str
) -> None:
    log_path = tmp_path / "server.log"
    process, port = start_server(server_env(catalog_file, **key_settings), log_path)
    try:
        exit_code = process.wait(timeout=60)  # before any worker: no model is loaded
    finally:
        stop_server(process)
    output = log_path.read_text()
    assert exit_code != 0
    (error_line,) = [line for line in output.splitlines() if message in line]  # said once
    assert error_line.startswith("Error: ")
    assert "Traceback" not in output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2)


def test_server_with_a_catalog_model_missing_from_the_store_names_the_fix(
    catalog_file: Path, tmp_path: Path
) -> None:
    """Not BentoML's "No cloud context default found": the commands that store the model."""
    empty_store = tmp_path / "empty-store"
    env = server_env(catalog_file, MODERATION_AUTH_DISABLED="1", BENTOML_HOME=str(empty_store))
    log_path = tmp_path / "server.log"
    process, _ = start_server(env, log_path)
    try:
        exit_code = process.wait(timeout=60)
    finally:
        stop_server(process)
    output = log_path.read_text()
    assert exit_code != 0
    (error_line,) = [
        line for line in output.splitlines() if "not in the BentoML model store" in line
    ]
    assert error_line.startswith("Error: ")
    assert "python -m tools.store ensure-default" in error_line
    assert "make import-model SOURCE=" in error_line
    assert "cloud" not in output.lower()
    assert "Traceback" not in output


def test_readiness_is_503_while_the_models_load_then_200(server: RunningServer) -> None:
    """What the session server's /readyz answered from its first answer until it was ready."""
    *loading, ready = server.readyz_statuses
    assert ready == 200
    assert loading, "the first answer was already 200: readiness did not wait for the models"
    assert set(loading) == {503}


def corrupt_stored_model() -> str:
    """A scikit-learn model in the store whose pipeline file is garbage."""
    labels = {"id2label": {"0": "clean", "1": "profane"}}
    with bentoml.models.create("corrupt-sklearn", metadata=labels) as model:
        Path(model.path_of(SKLEARN_PIPELINE_FILE)).write_bytes(b"not a joblib file")
    return str(model.tag)


def test_models_that_cannot_load_keep_it_unready_with_one_line_each(
    stored_models: StoredModels, tmp_path: Path
) -> None:
    document = catalog_document(stored_models)
    # in the store, but the catalog maps a label it does not have: it can never load
    broken = {**document["models"][-1], "name": "broken", "labels": {"TOXIC": "harassment"}}
    corrupt = {
        "name": "corrupt",
        "backend": "sklearn",
        "tag": corrupt_stored_model(),
        "labels": {"clean": None, "profane": "harassment"},
    }
    document["models"] = [*document["models"], broken, corrupt]
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(document))
    key = "lifecycle-key"
    log_path = tmp_path / "server.log"
    process, port = start_server(
        server_env(catalog, MODERATION_API_KEY_HASHES=hash_key(key)), log_path
    )
    base_url = f"http://127.0.0.1:{port}"

    def failures() -> list[str]:
        return [line for line in log_path.read_text().splitlines() if "failed to load" in line]

    try:
        deadline = time.monotonic() + 120
        while len(failures()) < 2:  # the log says which and why, once each
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        for _ in range(3):  # live, but never ready
            assert httpx.get(f"{base_url}/livez", timeout=5).status_code == 200
            assert httpx.get(f"{base_url}/readyz", timeout=5).status_code == 503
            time.sleep(1)
        response = httpx.post(
            f"{base_url}/v1/moderations",
            json={"input": "x"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["error"]["type"] == "server_error"
        assert "could not be loaded" in response.json()["error"]["message"]
    finally:
        stop_server(process)
    broken_line, corrupt_line = failures()
    assert "model 'broken'" in broken_line and "TOXIC" in broken_line
    assert f"model 'corrupt' ({corrupt['tag']}) failed to load: " in corrupt_line
    output = log_path.read_text()
    assert "Traceback" not in output
    assert output.count("Service moderation initialized") == 1  # no restart loop


def _make(target: str, env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """`make <target>` with the venv taken as built (the session already runs inside it)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["make", "-o", ".venv/.installed", target, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_make_serve_with_keys_serves_with_the_given_key_required(
    catalog_file: Path, tmp_path: Path
) -> None:
    key = "local-test-key"
    port = free_port()
    env = server_env(
        catalog_file,
        MODERATION_API_KEY=key,
        BENTOML_HOME=str(server_home(Path(os.environ["BENTOML_HOME"]), tmp_path)),
    )
    log_path = tmp_path / "make.log"
    process = _make("serve-with-keys", env, log_path, f"PORT={port}")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, base_url, log_path)
        assert httpx.get(f"{base_url}/v1/models", timeout=30).status_code == 401
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base_url}/v1/models", headers=headers, timeout=30).status_code == 200
        wrong = {"Authorization": "Bearer another-key"}
        assert httpx.get(f"{base_url}/v1/models", headers=wrong, timeout=30).status_code == 401
    finally:
        stop_server(process)
    assert key not in log_path.read_text()  # hashed before the server sees it, never echoed


def test_make_serve_with_keys_without_a_key_says_how_to_give_one(
    catalog_file: Path, tmp_path: Path
) -> None:
    log_path = tmp_path / "make.log"
    process = _make("serve-with-keys", server_env(catalog_file), log_path)
    try:
        assert process.wait(timeout=60) != 0
    finally:
        stop_server(process)
    assert "make serve-with-keys: set MODERATION_API_KEY=<key>" in log_path.read_text()
