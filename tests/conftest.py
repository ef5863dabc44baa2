"""Session-wide test settings and the fixtures several directories share: a throw-away BentoML
home, the Hub offline, no usage statistics, the tiny models, the test catalog and ONE real
`bentoml serve` for the whole session (tests/service, tests/perf, tests/infra's metric names).

The environment is set before anything imports bentoml or huggingface_hub: both read it at import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="moderation-tests-"))
os.environ["BENTOML_HOME"] = str(_SESSION_DIR / "bentoml")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"  # BentoML would otherwise post usage statistics
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("MODERATION_CATALOG", None)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from bench.deberta import build_tiny_deberta  # noqa: E402
from service.auth import hash_key  # noqa: E402
from tests.fixtures.catalog import StoredModels, catalog_document  # noqa: E402
from tests.fixtures.servers import (  # noqa: E402
    API_KEYS,
    REPO_ROOT,
    RunningServer,
    server_env,
    serving,
)
from tests.infra.plans import plan, plan_variant, plans  # noqa: E402, F401 (the plan fixtures)
from tools.model_import import import_model  # noqa: E402
from tools.store import ensure_default  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight DeBERTa-v2 with KoalaAI/Text-Moderation's labels."""
    return build_tiny_deberta(tmp_path_factory.mktemp("tiny-deberta"))


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


@pytest.fixture(scope="session")
def catalog_file(stored_models: StoredModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog_document(stored_models), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def server(catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real `bentoml serve service.app:Moderation` with API keys and the test catalog."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = server_env(
        catalog_file, MODERATION_API_KEY_HASHES=",".join(hash_key(key) for key in API_KEYS)
    )
    with serving(env, log_path) as running:
        yield running
