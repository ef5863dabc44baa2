"""The benchmark's baseline is a fair one: the MVP serves the same model with the same scores."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bench.load import SAMPLE_TEXTS, is_well_formed
from bench.mvp_baseline import build_app
from tests.fixtures.catalog import StoredModels
from tests.fixtures.servers import RunningServer


def test_mvp_baseline_answers_like_the_kit(
    server: RunningServer, stored_models: StoredModels
) -> None:
    request = {"input": list(SAMPLE_TEXTS), "model": "profanity-check"}
    with TestClient(build_app("profanity-check")) as mvp_client:
        mvp = mvp_client.post("/v1/moderations", json=request)
    with server.client() as kit_client:
        kit = kit_client.post("/v1/moderations", json=request)

    assert mvp.status_code == kit.status_code == 200
    assert is_well_formed(mvp.content, inputs=len(SAMPLE_TEXTS))
    mvp_results, kit_results = mvp.json()["results"], kit.json()["results"]
    assert [result["flagged"] for result in mvp_results] == [r["flagged"] for r in kit_results]
    assert any(result["flagged"] for result in kit_results)  # the texts do exercise the model
    for ours, theirs in zip(mvp_results, kit_results, strict=True):
        assert ours["category_scores"] == pytest.approx(theirs["category_scores"])
