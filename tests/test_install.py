"""The install step (`make venv`, which `make serve` and `make test` run) works on a fresh laptop:
pip is told where torch's CPU build is, the same index the Bento's image installs it from."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _venv_commands() -> list[list[str]]:
    """What `make venv` would run on a fresh clone (`-B`: as if nothing were installed)."""
    dry_run = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [shlex.split(line) for line in dry_run.stdout.replace("\\\n", " ").splitlines()]


def test_the_venv_install_names_the_torch_cpu_index_the_bento_uses() -> None:
    pins = (ROOT / "requirements" / "service.txt").read_text()
    assert "torch==2.13.0+cpu" in pins  # a local version: on PyTorch's CPU index, not on PyPI
    bento_indexes = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"][
        "extra_index_url"
    ]
    (install,) = [c for c in _venv_commands() if "requirements/dev.txt" in c]
    index = install[install.index("--extra-index-url") + 1]
    assert index in bento_indexes
    assert index.endswith("/whl/cpu")


def test_an_unreachable_index_costs_one_retry_per_package_not_five() -> None:
    for command in _venv_commands():
        if "install" in command:
            assert command[command.index("--retries") + 1] == "1", command
            assert int(command[command.index("--timeout") + 1]) <= 30, command
