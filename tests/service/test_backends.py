from collections.abc import Sequence

import bentoml
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from service.backends import CategoryScorer
from service.catalog import Backend, ModelSpec
from service.categories import CATEGORIES
from service.model_import import import_model
from tests.fixtures.catalog import StoredModels
from tests.fixtures.tiny_models import KOALA_CATEGORIES, KOALA_LABELS, build_tiny_deberta

TEXTS = ["hello there", "I will hurt you", "", "x\x00\x1b y " * 40]
# More texts, on which the tiny Koala model's top label within each group below varies.
MORE_TEXTS = [
    *TEXTS,
    *(f"text number {index} about cats" for index in range(8)),
    "the quick brown fox",
    "everyone hates you",
    "moderation models score text",
    "ABC xyz 123",
]


def koala_spec(tag: str, **overrides: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "tiny-koala",
            "backend": "transformers",
            "tag": tag,
            "labels": KOALA_CATEGORIES,
            **overrides,
        }
    )


def model_probabilities(
    stored: bentoml.Model, texts: Sequence[str], multi_label: bool
) -> np.ndarray:
    """The oracle: transformers' own model on the same texts, sigmoid or softmax over its logits."""
    tokenizer = AutoTokenizer.from_pretrained(stored.path)
    model = AutoModelForSequenceClassification.from_pretrained(stored.path).eval()
    with torch.inference_mode():
        encoded = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        logits = model(**encoded).logits
    return (logits.sigmoid() if multi_label else logits.softmax(dim=-1)).numpy()


def test_transformers_scores_are_the_model_softmax_mapped_to_categories(
    stored_models: StoredModels,
) -> None:
    stored = bentoml.models.get(stored_models.koala)
    scores = CategoryScorer(koala_spec(stored_models.koala), stored).score(TEXTS)
    expected = model_probabilities(stored, TEXTS, multi_label=False)
    for text_scores, row in zip(scores, expected, strict=True):
        assert set(text_scores) == set(CATEGORIES)
        for label_index, label in enumerate(KOALA_LABELS):
            category = KOALA_CATEGORIES[label]
            if category is not None:
                assert text_scores[category] == pytest.approx(float(row[label_index]), abs=1e-5)
        uncovered = set(CATEGORIES) - set(filter(None, KOALA_CATEGORIES.values()))
        assert all(text_scores[category] == 0.0 for category in uncovered)


@pytest.fixture(scope="module")
def multi_label_model(tmp_path_factory: pytest.TempPathFactory) -> bentoml.Model:
    directory = build_tiny_deberta(
        tmp_path_factory.mktemp("tiny-multi-label"),
        seed=2,
        problem_type="multi_label_classification",
    )
    return import_model(str(directory), name="tiny-multi-label")


def test_multi_label_models_score_each_label_with_its_own_sigmoid(
    multi_label_model: bentoml.Model,
) -> None:
    spec = koala_spec(str(multi_label_model.tag))
    scores = CategoryScorer(spec, multi_label_model).score(MORE_TEXTS)
    expected = model_probabilities(multi_label_model, MORE_TEXTS, multi_label=True)
    # independent per-label probabilities: they do not share one softmax's unit sum
    assert not np.allclose(expected.sum(axis=1), 1.0, atol=0.05)
    for text_scores, row in zip(scores, expected, strict=True):
        for index, label in enumerate(KOALA_LABELS):
            if (category := KOALA_CATEGORIES[label]) is not None:
                assert text_scores[category] == pytest.approx(float(row[index]), abs=1e-5)


def test_a_category_fed_by_several_labels_scores_the_highest_of_them(
    stored_models: StoredModels,
) -> None:
    groups = {"sexual": ("S", "S3"), "hate": ("H", "H2"), "violence": ("V", "V2", "HR", "SH")}
    labels = {label: category for category, members in groups.items() for label in members}
    spec = koala_spec(stored_models.koala, labels={**labels, "OK": None})
    stored = bentoml.models.get(stored_models.koala)
    scores = CategoryScorer(spec, stored).score(MORE_TEXTS)
    expected = model_probabilities(stored, MORE_TEXTS, multi_label=False)
    for category, members in groups.items():
        columns = [KOALA_LABELS.index(label) for label in members]
        winners = {members[int(row[columns].argmax())] for row in expected}
        assert len(winners) > 1, f"texts where one {category} label always wins pin nothing"
        for text_scores, row in zip(scores, expected, strict=True):
            assert text_scores[category] == pytest.approx(float(row[columns].max()), abs=1e-5)
    unfed = set(CATEGORIES) - set(groups)
    assert all(text_scores[category] == 0.0 for text_scores in scores for category in unfed)


def test_bf16_autocast_stays_close_to_fp32(
    stored_models: StoredModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = bentoml.models.get(stored_models.koala)
    fp32 = CategoryScorer(koala_spec(stored_models.koala), stored).score(TEXTS)
    monkeypatch.setenv("MODERATION_BF16", "1")
    bf16 = CategoryScorer(koala_spec(stored_models.koala), stored).score(TEXTS)
    for full, half in zip(fp32, bf16, strict=True):
        assert np.allclose(list(full.values()), list(half.values()), atol=0.05)


def test_labels_the_model_lacks_are_refused_at_load(stored_models: StoredModels) -> None:
    spec = koala_spec(stored_models.koala, labels={"TOXIC": "harassment"})
    with pytest.raises(ValueError, match="TOXIC"):
        CategoryScorer(spec, bentoml.models.get(stored_models.koala))


def test_profanity_check_reports_profanity_as_harassment_only(stored_models: StoredModels) -> None:
    spec = ModelSpec(
        name="profanity-check",
        backend=Backend.SKLEARN,
        tag=stored_models.default,
        labels={"clean": None, "profane": "harassment"},
    )
    polite, rude = CategoryScorer(spec, bentoml.models.get(stored_models.default)).score(
        ["thank you for your help", "you are a fucking idiot"]
    )
    assert polite["harassment"] < 0.5 < rude["harassment"]
    assert {category for category, score in rude.items() if score > 0} == {"harassment"}
