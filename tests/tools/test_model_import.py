"""`python -m tools.store import` (= `make import-model`): local directories import offline, with
their provenance recorded; a Hub import on a machine without the Hub fails with a clear message."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import bentoml
import pytest
from transformers import AutoModelForSequenceClassification

from bench.deberta import KOALA_LABELS
from tests.fixtures.commands import model_store, run_module, stored_model_tags
from tools.model_import import (
    ModelImportError,
    default_store_name,
    directory_digest,
    import_model,
)


def test_import_from_local_directory_stores_a_loadable_model_with_its_provenance(
    tiny_model_dir: Path, offline_env: dict[str, str]
) -> None:
    result = run_module(
        "tools.store", "import", "--source", str(tiny_model_dir), "--name", "tiny-koala",
        env=offline_env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip().splitlines()[-1]
    assert tag.startswith("tiny-koala:")
    stored = model_store(offline_env).get(tag)
    assert stored.info.labels == {
        "source": str(tiny_model_dir.resolve()),
        "revision": directory_digest(tiny_model_dir),
    }
    assert stored.info.metadata["id2label"] == {
        str(i): label for i, label in enumerate(KOALA_LABELS)
    }
    reloaded = AutoModelForSequenceClassification.from_pretrained(stored.path)
    assert tuple(reloaded.config.id2label.values()) == KOALA_LABELS
    # The printed catalog entry names the stored tag, ready to paste into the catalog.
    assert f"tag: {tag}" in result.stdout


def test_import_records_an_explicit_revision_for_a_copied_snapshot(tiny_model_dir: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    stored = import_model(str(tiny_model_dir), revision=commit, name="copied-snapshot")
    assert stored.info.labels["revision"] == commit
    assert bentoml.models.get(stored.tag).info.labels["revision"] == commit


def _refused_endpoint() -> str:
    """A loopback URL nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("unreachable", ["offline-mode", "connection-refused"])
def test_hub_import_without_the_hub_fails_with_instructions_and_stores_nothing(
    unreachable: str, offline_env: dict[str, str]
) -> None:
    if unreachable == "connection-refused":
        offline_env.pop("HF_HUB_OFFLINE")
        offline_env["HF_ENDPOINT"] = _refused_endpoint()
    result = run_module(
        "tools.store", "import", "--source", "KoalaAI/Text-Moderation",
        "--revision", "main", env=offline_env,
    )  # fmt: skip

    assert result.returncode == 2
    assert "cannot reach the Hugging Face Hub" in result.stderr
    assert "hf download KoalaAI/Text-Moderation --revision main --local-dir <dir>" in result.stderr
    assert "make import-model SOURCE=<dir>" in result.stderr
    assert "Traceback" not in result.stderr
    assert stored_model_tags(offline_env) == []


def test_import_of_a_directory_without_a_classifier_fails_clearly(tmp_path: Path) -> None:
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "README.md").write_text("no weights here")
    stored_before = bentoml.models.list()

    with pytest.raises(ModelImportError, match="is not a transformers sequence-classification"):
        import_model(str(not_a_model))
    assert bentoml.models.list() == stored_before


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("KoalaAI/Text-Moderation", "text-moderation"),
        ("unitary/toxic_bert", "toxic_bert"),
        ("org/Model.v2", "model.v2"),
    ],
)
def test_default_store_name_is_the_lowercased_repository_name(source: str, expected: str) -> None:
    assert default_store_name(source) == expected


def test_directory_digest_pins_content_not_location(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        (directory / "config.json").write_text('{"id2label": {"0": "OK"}}')
        (directory / ".cache").mkdir()
        (directory / ".cache" / "download.lock").write_text("ignored")
    assert directory_digest(first) == directory_digest(second)

    (second / "config.json").write_text('{"id2label": {"0": "S"}}')
    assert directory_digest(first) != directory_digest(second)


def test_make_import_model_without_source_says_what_source_is() -> None:
    """Not an import of the current folder that fails on a missing tokenizer."""
    result = subprocess.run(
        ["make", "-o", ".venv/.installed", "import-model"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "make import-model: SOURCE is required" in result.stderr
    assert "SOURCE=KoalaAI/Text-Moderation" in result.stderr
    assert "tools.store import" not in result.stdout  # stopped before any import
