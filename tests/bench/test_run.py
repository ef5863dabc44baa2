"""`make bench QUICK=1` end to end: three contestants, the results file, plots and table.

No timing assertions (shared CI cores): only that the harness runs every contestant at every
level on the same texts, gets well-formed answers, and writes what `make bench` promises.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from tests.fixtures.servers import REPO_ROOT

pytestmark = pytest.mark.slow

ENTRY_KEYS = {"concurrency", "texts_per_s", "p50_ms", "p95_ms", "p99_ms", "errors"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_quick_bench_writes_results_plots_and_table_for_three_contestants(tmp_path: Path) -> None:
    out, dated = tmp_path / "out", tmp_path / "dated"
    command = [sys.executable, "-m", "bench.run", "--quick", "--texts", "9", "--backend", "onnx"]
    command += ["--levels", "1,3", "--out", str(out), "--results-dir", str(dated)]
    command += ["--precision", "fp32,int8"]  # two settings side by side
    subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODERATION_INFERENCE_THREADS": "1"},
        check=True,
        timeout=240,
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"machine", "command", "model", "settings", "targets", *run.CONTESTANTS}
    assert [target["name"].split(" ")[0] for target in results["targets"]] == [
        "service/limit",
        "service/baseline",
        "service/baseline",
        "idle",
    ]
    assert results["machine"]["cpu_model"]
    assert "avx2" in results["machine"]["cpu_features"] or platform.machine() != "x86_64"
    runs = {entry["setting"]: entry for entry in results["settings"]}
    assert list(runs) == ["fp32", "int8"]
    assert results["limit"] == runs["fp32"]["limit"]
    for entry in runs.values():
        assert entry["forward_p50_ms"] > 0
        idle = entry["idle"]
        assert idle["texts"] == 9 and idle["forward_p50_ms"] > 0 and idle["service_p50_ms"] > 0
        assert [level["concurrency"] for level in entry["limit"]] == [1, 3]
        assert [level["concurrency"] for level in entry["service"]] == [1, 3]
        assert set(entry["limit_cpu_seconds_per_text"]) == {"1", "3"}
        assert all(value > 0 for value in entry["limit_cpu_seconds_per_text"].values())
    assert "--quick" in results["command"]
    assert "bench-deberta-tiny-onnx" in results["model"] and "onnx" in results["model"]
    for contestant in run.CONTESTANTS:
        entries = results[contestant]
        assert [entry["concurrency"] for entry in entries] == [1, 3], contestant
        for entry in entries:
            assert set(entry) == ENTRY_KEYS
            assert entry["errors"] == 0
            assert entry["texts_per_s"] > 0
            assert 0 < entry["p50_ms"] <= entry["p95_ms"] <= entry["p99_ms"]
    for plot in ("throughput.png", "p99.png"):
        assert (out / plot).read_bytes().startswith(PNG_SIGNATURE)
    table = (out / "results.md").read_text().splitlines()
    assert [
        line.split("|")[1].strip()
        for line in table
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ] == ["1", "3"]
    assert not dated.exists()  # a quick run never replaces the dated table


def test_moderation_settings_reach_the_service_and_only_threads_reach_the_baseline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODERATION_MAX_INPUTS", "7")
    monkeypatch.setenv("MODERATION_INFERENCE_THREADS", "1")
    catalog = tmp_path / "catalog.yaml"
    service = run._server_env(catalog, keep_moderation=True)
    baseline = run._server_env(catalog, keep_moderation=False)
    assert service["MODERATION_MAX_INPUTS"] == "7"
    assert "MODERATION_MAX_INPUTS" not in baseline
    for env in (service, baseline):
        assert env["MODERATION_INFERENCE_THREADS"] == "1"
        assert env["MODERATION_CATALOG"] == str(catalog)
