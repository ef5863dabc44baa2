"""bench/designs.py: the design comparison (docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.servers import REPO_ROOT


def test_the_design_comparison_command_starts() -> None:
    """`python -m bench.designs` (docs/performance.md) finds what it imports."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.designs", "--help"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--baseline" in result.stdout
