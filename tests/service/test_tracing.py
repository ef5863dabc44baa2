"""Tracing is off unless an operator turns it on: BentoML would record a span for every request
(kept alive for the traffic timeout) although it exports none (docs/operations.md, Soak)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures.servers import REPO_ROOT

TRACER_OF_THE_SERVICE = """
import service.app
from bentoml._internal.configuration.containers import BentoMLContainer
print(type(BentoMLContainer.tracer_provider.get().get_tracer("probe")).__name__)
"""


def tracer_type(**env: str) -> str:
    """The tracer BentoML's provider gives once service.app is imported, in a fresh process."""
    base = {key: value for key, value in os.environ.items() if key != "OTEL_SDK_DISABLED"}
    result = subprocess.run(
        [sys.executable, "-c", TRACER_OF_THE_SERVICE],
        env={**base, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("env", "tracer"), [({}, "NoOpTracer"), ({"OTEL_SDK_DISABLED": "false"}, "Tracer")]
)
def test_the_service_records_spans_only_when_an_operator_enables_them(
    env: dict[str, str], tracer: str
) -> None:
    assert tracer_type(**env) == tracer
