"""Schemathesis against the running server's own OpenAPI document (/docs.json): generated valid and
invalid requests for every documented operation; no 5xx, and every answer (status code, content
type, body, auth enforcement) is one the document declares."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fixtures.servers import RunningServer

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def api_schema(server: RunningServer) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {server.api_key}"},
            "checks": {
                # Valid requests: answered, or a model name that is not loaded (404), or a body
                # over the byte limit (413: JSON escapes make a body that maxLength and maxItems
                # allow larger than any fixed limit). Invalid ones: 400, or 413 when also too big.
                "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "413"]},
                "negative_data_rejection": {"expected-statuses": ["400", "413"]},
            },
        }
    )
    return schemathesis.openapi.from_url(f"{server.base_url}/docs.json", config=config)


def generation_modes(operation: schemathesis.APIOperation) -> list[GenerationMode]:
    """Valid data for every operation; invalid data where there is an input to get wrong (the
    credentials are the configured key, never generated)."""
    has_inputs = any((operation.body, operation.query, operation.path_parameters))
    return [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if has_inputs else [])]


# schemathesis.pytest.from_fixture needs pytest < 9 (it reads Function._nodeid), hence the
# operations are driven through Hypothesis directly, one subtest per operation and mode.
def test_api_answers_as_its_openapi_document_says(
    api_schema: schemathesis.BaseSchema, subtests: pytest.Subtests
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {"POST /v1/moderations", "GET /v1/models"} <= {op.label for op in operations}
    for operation in operations:
        for mode in generation_modes(operation):
            with subtests.test(operation=operation.label, mode=mode.value):

                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def answers_as_documented(case: schemathesis.Case) -> None:
                    case.call_and_validate()

                answers_as_documented()
