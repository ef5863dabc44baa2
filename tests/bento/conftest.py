"""Helpers for the Bento lifecycle tests, which run the real commands (`python -m service.store`,
`python -m service.build_bento`, `bentoml serve`) in subprocesses. `offline_env` gives one its own
empty model store and Hugging Face cache, with the Hub offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bentoml._internal.models import ModelStore

from tests.fixtures.servers import REPO_ROOT


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess with its own empty model store and Hub cache, Hub offline."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.pop("MODERATION_CATALOG", None)
    return env


def run_module(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def model_store(env: dict[str, str]) -> ModelStore:
    """The model store a subprocess run with `env` wrote to."""
    return ModelStore(Path(env["BENTOML_HOME"]) / "models")


def stored_model_tags(env: dict[str, str]) -> list[str]:
    """Tags in that store; none when no command has created it yet."""
    if not (Path(env["BENTOML_HOME"]) / "models").is_dir():
        return []
    return [str(model.tag) for model in model_store(env).list()]
