"""Swapping models = building a new Bento version: two catalogs give two Bentos, and each one,
served with `bentoml serve moderation:<version>`, reports its own version and serves exactly the
models it was built with.

The Bentos are built by `python -m tools.build_bento` (what `make bento` runs) and served from a
directory outside the repository with no PYTHONPATH, so only the code and catalog packed into each
Bento can answer.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bentoml
import httpx
import pytest
import yaml

from bench.deberta import KOALA_CATEGORIES
from bench.servers import start_server, stop_server, wait_until_ready
from infra.image import DOCKERFILE, image_context
from service.version import API_VERSION, APP_VERSION
from tests.fixtures.commands import REPO_ROOT, run_module
from tools.model_import import import_model
from tools.store import ensure_default

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    catalog: Path
    models: dict[str, str]  # catalog name -> store tag
    default_model: str

    @property
    def version(self) -> str:
        return self.tag.partition(":")[2]


def is_commit_of_this_checkout(commit: str) -> bool:
    """HEAD or one of its ancestors (HEAD may have moved on since the build)."""
    ancestry = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=REPO_ROOT, check=False
    )
    return ancestry.returncode == 0


def write_catalog(path: Path, default_model: str, models: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"default_model": default_model, "models": models}))
    return path


def build_bento(catalog: Path) -> str:
    result = run_module("tools.build_bento", "--catalog", str(catalog), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    *_, hint, tag = result.stdout.strip().splitlines()
    # The hint runs as printed: the server refuses to start without a key setting.
    assert f"MODERATION_AUTH_DISABLED=1 .venv/bin/bentoml serve {tag} " in hint
    return tag


@pytest.fixture(scope="module")
def bentos(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[BuiltBento]:
    """`stable` serves the offline default; `next` swaps it for a (tiny) DeBERTa classifier."""
    default_tag = str(ensure_default())
    koala_tag = str(import_model(str(tiny_model_dir), name="swap-koala").tag)
    shipped_default = yaml.safe_load((REPO_ROOT / "service" / "catalog.yaml").read_text())
    profanity_entry = next(m for m in shipped_default["models"] if m["tag"] == default_tag)
    koala_entry = {
        "name": "koala",
        "backend": "transformers",
        "tag": koala_tag,
        "labels": KOALA_CATEGORIES,
    }
    directory = tmp_path_factory.mktemp("catalogs")
    stable = write_catalog(directory / "stable.yaml", profanity_entry["name"], [profanity_entry])
    swapped = write_catalog(directory / "next.yaml", "koala", [koala_entry])
    profanity = profanity_entry["name"]
    return [
        BuiltBento(build_bento(stable), stable, {profanity: default_tag}, profanity),
        BuiltBento(build_bento(swapped), swapped, {"koala": koala_tag}, "koala"),
    ]


@pytest.fixture(scope="module")
def served(
    bentos: list[BuiltBento], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Both Bentos served at once, each by `bentoml serve <tag>`: tag -> base URL."""
    workdir = tmp_path_factory.mktemp("serve")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MODERATION_") and key != "PYTHONPATH"
    }
    env["MODERATION_AUTH_DISABLED"] = "1"
    servers = []
    try:
        for bento in bentos:
            log_path = workdir / f"{bento.version}.log"
            process, port = start_server(env, log_path, target=bento.tag, cwd=workdir)
            servers.append((bento.tag, process, f"http://127.0.0.1:{port}", log_path))
        for _, process, base_url, log_path in servers:
            wait_until_ready(process, base_url, log_path)
        yield {tag: base_url for tag, _, base_url, _ in servers}
    finally:
        stop_server(*(process for _, process, _, _ in servers), grace_s=10)


def test_two_catalogs_build_two_bento_versions_labelled_with_their_models(
    bentos: list[BuiltBento],
) -> None:
    stable, swapped = bentos
    assert stable.tag != swapped.tag
    for built in bentos:
        bento = bentoml.bentos.get(built.tag)
        labels = bento.info.labels
        assert labels["app-version"] == APP_VERSION
        assert labels["api-version"] == API_VERSION
        commit = re.fullmatch(r"([0-9a-f]{40})(-dirty)?", labels["git-commit"])
        assert commit is not None
        assert is_commit_of_this_checkout(commit.group(1))
        assert labels["models"] == ",".join(f"{n}={t}" for n, t in built.models.items())
        packed = {str(model.tag) for model in bento.info.all_models}
        assert packed == set(built.models.values())
        # The Bento carries the catalog it was built from, as the one it serves by default.
        packed_catalog = Path(bento.path_of("src/service/catalog.yaml"))
        assert packed_catalog.read_text() == built.catalog.read_text()


def test_bento_packs_only_service_code_catalog_and_build_file(bentos: list[BuiltBento]) -> None:
    source = Path(bentoml.bentos.get(bentos[0].tag).path_of("src"))
    packed = {path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file()}
    repo_modules = {f"service/{path.name}" for path in (REPO_ROOT / "service").glob("*.py")}
    assert packed == repo_modules | {"service/catalog.yaml", "bentofile.yaml"}


def test_bento_image_recipe_is_cpu_only_and_non_root(bentos: list[BuiltBento]) -> None:
    """What `bentoml containerize` will build (checked for real by `make image-test`)."""
    bento = bentoml.bentos.get(bentos[0].tag)
    requirements = Path(bento.path_of("env/python/requirements.txt")).read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert "torch==2.13.0+cpu" in requirements
    dockerfile = Path(bento.path_of("env/docker/Dockerfile")).read_text().splitlines()
    users = [line for line in dockerfile if line.startswith("USER ")]
    assert users == ["USER bentoml"]
    assert "ARG BENTO_USER_UID=1034" in dockerfile
    assert "ARG UV_INDEX_STRATEGY=unsafe-best-match" in dockerfile


def test_each_bento_lists_its_own_models_and_versions(
    bentos: list[BuiltBento], served: dict[str, str]
) -> None:
    for bento in bentos:
        response = httpx.get(f"{served[bento.tag]}/v1/models", timeout=30)
        assert response.status_code == 200
        listing = response.json()
        assert {card["id"]: card["tag"] for card in listing["data"]} == bento.models
        assert listing["app_version"] == APP_VERSION
        assert listing["api_version"] == API_VERSION
        assert listing["bento"] == bento.tag
        assert response.headers["X-Moderation-Version"] == f"{APP_VERSION}+{bento.version}"
        spec = httpx.get(f"{served[bento.tag]}/docs.json", timeout=30).json()
        assert spec["info"]["version"] == f"{APP_VERSION}+{bento.version}"
        assert "/v1/moderations" in spec["paths"]


def test_each_bento_serves_exactly_its_own_models(
    bentos: list[BuiltBento], served: dict[str, str]
) -> None:
    for bento, other in zip(bentos, reversed(bentos), strict=True):
        url = f"{served[bento.tag]}/v1/moderations"
        default = httpx.post(url, json={"input": "hello there"}, timeout=60)
        assert default.status_code == 200
        assert default.json()["model"] == bento.default_model
        assert default.headers["X-Moderation-Version"].endswith(f"+{bento.version}")
        for own_model in bento.models:
            assert (
                httpx.post(url, json={"input": "hi", "model": own_model}, timeout=60).json()[
                    "model"
                ]
                == own_model
            )
        for foreign_model in other.models:
            refused = httpx.post(url, json={"input": "hi", "model": foreign_model}, timeout=60)
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "model_not_found"


def test_build_names_the_models_missing_from_the_store(
    bentos: list[BuiltBento], offline_env: dict[str, str]
) -> None:
    result = run_module("tools.build_bento", "--catalog", str(bentos[1].catalog), env=offline_env)
    assert result.returncode == 2
    assert f"koala ({bentos[1].models['koala']})" in result.stderr
    assert "make import-model" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_bento_exports_the_image_context_pulumi_builds(bentos: list[BuiltBento]) -> None:
    """What `pulumi up` builds (infra/image.py): the Bento, its models, BentoML's Dockerfile."""
    for bento in bentos:
        # Named relative to the folder the engine runs the program from (`main`: infra/).
        context = REPO_ROOT / "infra" / image_context(bento.tag)
        assert (context / DOCKERFILE).is_file()
        assert "FROM " in (context / DOCKERFILE).read_text()
        assert (context / "bento.yaml").is_file()
        for model_tag in bento.models.values():
            name, version = model_tag.split(":")
            assert (context / "models" / name / version).is_dir(), model_tag
