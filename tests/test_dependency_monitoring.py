"""Dependency version monitoring: Dependabot covers every pin of requirements/ (the CPU torch build
excepted, by design), and `make audit` fails, with pip-audit's own error, when it cannot reach
vulnerability data."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)$", re.MULTILINE)
CATCH_ALL_GROUP = "transitive"


def _pip_updates() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    [pip] = [update for update in config["updates"] if update["package-ecosystem"] == "pip"]
    return pip


def _pins() -> dict[str, str]:
    """Every exact pin of requirements/*.txt: name -> version."""
    return {
        match["name"].lower(): match["version"]
        for path in REQUIREMENTS.glob("*.txt")
        for match in PIN.finditer(path.read_text())
    }


def _group_of(name: str, groups: dict[str, Any]) -> str | None:
    """The group Dependabot puts a package in: the first whose patterns match it."""
    return next(
        (
            group
            for group, rules in groups.items()
            if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in rules["patterns"])
        ),
        None,
    )


def test_dependabot_watches_every_requirements_file_weekly() -> None:
    pip = _pip_updates()
    directory = ROOT / pip["directory"].lstrip("/")
    assert directory == REQUIREMENTS
    assert {p.name for p in directory.glob("*.txt")} >= {
        "service.txt",
        "dev.txt",
        "constraints.txt",
    }
    assert pip["schedule"]["interval"] == "weekly"


def test_local_builds_are_never_bumped_to_the_pypi_build() -> None:
    """torch==2.13.0+cpu: a bump to PyPI's torch would silently bring the CUDA build."""
    ignored = {rule["dependency-name"].lower() for rule in _pip_updates()["ignore"]}
    local_builds = {name for name, version in _pins().items() if "+" in version}
    assert "torch" in local_builds
    assert local_builds <= ignored


def test_pulumi_packages_move_together_and_every_group_is_used() -> None:
    groups = _pip_updates()["groups"]
    pins = _pins()
    assert {_group_of(name, groups) for name in pins if name.startswith("pulumi")} == {"pulumi"}
    used = {_group_of(name, groups) for name in pins}
    assert set(groups) - used == set(), "a group that matches no pinned package is stale"
    assert list(groups)[-1] == CATCH_ALL_GROUP


def test_make_audit_without_the_internet_fails_with_the_tools_own_error() -> None:
    """No reachable vulnerability data (a proxy that refuses): pip-audit fails the audit and
    says why itself; the Makefile names no registry host to probe first."""
    refused = "http://127.0.0.1:9"
    offline = {**os.environ, "NO_PROXY": "", "no_proxy": ""}
    offline.update({key: refused for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy")})
    result = subprocess.run(
        ["make", "-o", ".venv/.installed", "audit"],
        cwd=ROOT,
        env=offline,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "pip-audit --requirement" in result.stdout
    # What docs/troubleshooting.md tells a reader to look for.
    assert "Max retries exceeded with url: /pypi/" in result.stderr
    assert (
        "Max retries exceeded with url: /pypi/"
        in (ROOT / "docs" / "troubleshooting.md").read_text()
    )
    assert "Connection refused" in result.stderr
