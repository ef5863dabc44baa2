from hypothesis import given
from hypothesis import strategies as st

from service.catalog import ModelSpec
from service.categories import CATEGORIES
from service.moderation import moderate

SPEC = ModelSpec.model_validate(
    {
        "name": "m",
        "backend": "transformers",
        "tag": "m:v1",
        "labels": {"v": "violence", "h": "hate", "ok": None},
        "thresholds": {"violence": 0.7},
        "default_threshold": 0.4,
    }
)
scores_strategy = st.fixed_dictionaries({category: st.floats(0.0, 1.0) for category in CATEGORIES})


@given(scores_strategy)
def test_flagged_is_any_covered_category_at_or_over_its_threshold(scores: dict) -> None:
    result = moderate(SPEC, scores)
    assert set(result.categories) == set(result.category_scores) == set(CATEGORIES)
    assert result.categories["violence"] == (scores["violence"] >= 0.7)
    assert result.categories["hate"] == (scores["hate"] >= 0.4)
    uncovered = set(CATEGORIES) - {"violence", "hate"}
    assert not any(result.categories[category] for category in uncovered)
    assert result.flagged == (result.categories["violence"] or result.categories["hate"])


def test_a_score_equal_to_the_threshold_is_flagged() -> None:
    scores = dict.fromkeys(CATEGORIES, 0.0) | {"violence": 0.7}
    assert moderate(SPEC, scores).categories["violence"]
    assert not moderate(SPEC, scores | {"violence": 0.6999}).flagged


@given(scores_strategy)
def test_the_catalog_decision_is_the_api_decision(scores: dict) -> None:
    """`make compare` decides with ModelSpec.flags: it must flag exactly what the API flags."""
    assert SPEC.flags(scores) == moderate(SPEC, scores).categories
