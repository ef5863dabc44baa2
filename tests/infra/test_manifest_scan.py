"""A well-known manifest scanner, checkov, over both plans' Kubernetes objects.

Every finding must be listed, with its reason, in checkov_exceptions.yaml; an exception that no
longer matches a finding fails too. checkov runs from its own venv (`make checkov`: its pins clash
with ours), offline (`--skip-download`: no policy download from its vendor's platform).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.plans import ROOT, Plan

CHECKOV = Path(os.environ.get("CHECKOV", ROOT / "build" / "tools" / "checkov" / "bin" / "checkov"))
EXCEPTIONS = Path(__file__).with_name("checkov_exceptions.yaml")


def scan(objects: dict[str, list[dict[str, Any]]], directory: Path) -> set[tuple[str, str]]:
    """(check id, resource) of every failed check; `objects`: file stem -> manifests."""
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: run `make checkov` (make test does)"
    for stem, manifests in objects.items():
        (directory / f"{stem}.yaml").write_text(yaml.safe_dump_all(manifests))
    command = [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes"]
    command += ["--output", "json", "--quiet", "--skip-download"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.stdout.strip(), completed.stderr
    reports = json.loads(completed.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {
        (failed["check_id"], failed["resource"])
        for report in reports
        for failed in report["results"]["failed_checks"]
    }


def _exceptions() -> list[dict[str, str]]:
    return yaml.safe_load(EXCEPTIONS.read_text())


@pytest.fixture(scope="module")
def findings(plans: dict[str, Plan], tmp_path_factory: pytest.TempPathFactory) -> set:
    objects = {stack: list(plan.kubernetes_objects()) for stack, plan in plans.items()}
    return scan(objects, tmp_path_factory.mktemp("checkov"))


def test_every_exception_names_a_check_a_resource_and_a_reason() -> None:
    for entry in _exceptions():
        assert set(entry) == {"check", "resource", "reason"}, entry
        assert len(entry["reason"].split()) >= 8, entry


def test_checkov_finds_nothing_beyond_the_listed_exceptions(findings: set) -> None:
    listed = {(entry["check"], entry["resource"]) for entry in _exceptions()}
    assert findings - listed == set()
    assert listed - findings == set(), "stale exceptions: checkov no longer reports them"


def test_the_scan_reports_what_it_should(tmp_path: Path) -> None:
    """Not vacuous: a root, writable, unpinned pod is reported."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox:latest"}]},
    }
    found = {check for check, _ in scan({"bad": [pod]}, tmp_path)}
    assert {"CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_43"} <= found
