"""Session-wide test settings: a throw-away BentoML home, the Hub offline, shared tiny models.

BENTOML_HOME is set before anything imports bentoml, so no test can write to ~/bentoml.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.tiny_models import build_tiny_deberta

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="moderation-tests-"))
os.environ["BENTOML_HOME"] = str(_SESSION_DIR / "bentoml")
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("MODERATION_CATALOG", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight DeBERTa-v2 with KoalaAI/Text-Moderation's labels."""
    return build_tiny_deberta(tmp_path_factory.mktemp("tiny-deberta"))
