"""`make validate-precision`: the gate that decides whether a precision may be a model's default."""

from __future__ import annotations

from bench.deberta import KOALA_CATEGORIES
from bench.precision import validate
from bench.texts import moderation_texts
from service.catalog import FP32_CPU, ModelSpec, Setting
from tests.fixtures.catalog import StoredModels

TEXTS = moderation_texts(24, seed=3)


def _spec(tag: str) -> ModelSpec:
    return ModelSpec.model_validate(
        {"name": "tiny-koala", "backend": "transformers", "tag": tag, "labels": KOALA_CATEGORIES}
    )


def test_fp32_against_itself_agrees_fully_and_passes(stored_models: StoredModels) -> None:
    result = validate(_spec(stored_models.koala), _spec(stored_models.koala), FP32_CPU, TEXTS)
    assert result.top_category_agreement == 1.0
    assert result.max_score_difference == 0.0
    assert result.passed


def test_int8_of_a_wide_random_model_is_measured_as_different_and_fails(
    stored_models: StoredModels,
) -> None:
    # The tiny fixture's weights are wide (initializer_range 0.5): int8 rounding moves its
    # scores far more than a trained model's; the gate must say so rather than pass it.
    result = validate(
        _spec(stored_models.koala),
        _spec(stored_models.koala),
        Setting.model_validate("int8"),
        TEXTS,
    )
    assert result.max_score_difference > 0.05
    assert not result.passed
    assert result.texts == len(TEXTS)
    assert result.reference_cpu_seconds_per_text > 0
