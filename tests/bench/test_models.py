"""bench/models.py: the benchmark model in the store is the one the builder builds now, and its
ONNX export the one the export code exports now, so an edit to the builder (bench/deberta.py) or
to the export (tools/onnx_export.py) never leaves a stale model behind the benchmark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
from bentoml.exceptions import NotFound

from bench.models import ensure_bench_model, ensure_bench_onnx
from tests.fixtures.servers import REPO_ROOT

TINY_LINE = "TINY = DebertaShape(32, 2, 2, 64, MAX_POSITIONS, 16, 0.5)"


def _hidden_size(tag: bentoml.Tag | str) -> int:
    config = Path(bentoml.models.get(tag).path) / "config.json"
    return json.loads(config.read_text())["hidden_size"]


def test_a_stored_build_is_reused_while_the_builder_is_unchanged() -> None:
    first = ensure_bench_model(quick=True)
    created = bentoml.models.get(first).info.creation_time
    assert ensure_bench_model(quick=True) == first
    assert bentoml.models.get(first).info.creation_time == created


def _copy_of_this_checkout(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in ("bench", "service", "tools"):
        shutil.copytree(
            REPO_ROOT / package,
            tree / package,
            ignore=shutil.ignore_patterns("__pycache__", "results"),
        )
    return tree


def _run_in(tree: Path, code: str) -> str:
    """The last line `code` prints, run on `tree`'s code (with the session's BENTOML_HOME)."""
    built = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return built.stdout.strip().splitlines()[-1]


def test_an_edit_to_the_builder_stores_the_edited_model_under_a_new_tag(tmp_path: Path) -> None:
    before = ensure_bench_model(quick=True)
    assert _hidden_size(before) == 32
    tree = _copy_of_this_checkout(tmp_path)
    builder = tree / "bench" / "deberta.py"
    source = builder.read_text()
    assert TINY_LINE in source
    builder.write_text(source.replace(TINY_LINE, TINY_LINE.replace("(32,", "(48,")))

    after = _run_in(tree, "from bench.models import ensure_bench_model as e; print(e(True))")

    assert after != str(before)
    assert _hidden_size(after) == 48
    with pytest.raises(NotFound):  # the earlier build is gone from the store
        bentoml.models.get(before)


def test_an_edit_to_the_export_code_exports_again_under_a_new_tag(tmp_path: Path) -> None:
    model = ensure_bench_model(quick=True)
    before = ensure_bench_onnx(model)
    assert ensure_bench_onnx(model) == before  # reused while the export code is unchanged
    tree = _copy_of_this_checkout(tmp_path)
    with (tree / "tools" / "onnx_export.py").open("a") as export_code:
        export_code.write("\n# an edit\n")

    after = _run_in(
        tree,
        "from bench.models import ensure_bench_model as m, ensure_bench_onnx as e; "
        "print(e(m(True)))",
    )

    assert after != str(before)
    assert after.startswith(f"{model.name}-onnx:{model.version}-")
    with pytest.raises(NotFound):
        bentoml.models.get(before)
