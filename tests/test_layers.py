"""The layers of pyproject.toml's import-linter contracts hold, and a planted violation of each
breaks them: `lint-imports` (in `make test`) runs over a copy of the code with one import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "infra", "tools", "policy", "bench", "tests")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "400"},  # no wrapping
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def code_copy(tmp_path: Path) -> Path:
    """The Python packages and pyproject.toml, without data files."""
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            tmp_path / package,
            ignore=lambda _, names: [
                name for name in names if not name.endswith(".py") and "." in name
            ],
        )
    return tmp_path


def broken_contracts(report: str) -> list[str]:
    """The names of the contracts lint-imports' summary marks BROKEN."""
    return [
        line.removesuffix(" BROKEN") for line in report.splitlines() if line.endswith(" BROKEN")
    ]


def test_the_code_keeps_every_contract(code_copy: Path) -> None:
    result = lint_imports(code_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("service/version.py", "import infra.config", "A Bento carries the service alone"),
        ("service/catalog.py", "import tools.store", "A Bento carries the service alone"),
        ("infra/network.py", "import tools.plan", "infra is the Pulumi program only"),
        ("infra/sizing.py", "import service.moderation", "infra reads the service's catalog"),
        ("bench/texts.py", "import tests.fixtures.http", "Nothing imports tests"),
        ("service/moderation.py", "import service.api", "The service's layers import only"),
        ("service/backends.py", "import service.moderation", "The service's layers import only"),
        ("service/batching.py", "import starlette.types", "The moderation core and the model"),
    ],
)
def test_a_planted_import_breaks_its_contract(
    code_copy: Path, module: str, planted: str, contract: str
) -> None:
    path = code_copy / module
    path.write_text(path.read_text() + f"\n{planted}  # planted\n")
    result = lint_imports(code_copy)
    assert result.returncode != 0
    assert any(name.startswith(contract) for name in broken_contracts(result.stdout)), result.stdout
