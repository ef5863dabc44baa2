import bentoml
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from service.backends import CategoryScorer
from service.catalog import Backend, ModelSpec
from service.categories import CATEGORIES
from tests.fixtures.catalog import StoredModels
from tests.fixtures.tiny_models import KOALA_CATEGORIES

TEXTS = ["hello there", "I will hurt you", "", "x\x00\x1b y " * 40]


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


def test_transformers_scores_are_the_model_softmax_mapped_to_categories(
    stored_models: StoredModels,
) -> None:
    stored = bentoml.models.get(stored_models.koala)
    scores = CategoryScorer(koala_spec(stored_models.koala), stored).score(TEXTS)

    tokenizer = AutoTokenizer.from_pretrained(stored.path)
    model = AutoModelForSequenceClassification.from_pretrained(stored.path).eval()
    with torch.inference_mode():
        encoded = tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
        expected = model(**encoded).logits.softmax(dim=-1).numpy()

    for text_scores, row in zip(scores, expected, strict=True):
        assert set(text_scores) == set(CATEGORIES)
        for label_index, label in model.config.id2label.items():
            category = KOALA_CATEGORIES[label]
            if category is not None:
                assert text_scores[category] == pytest.approx(float(row[label_index]), abs=1e-5)
        uncovered = set(CATEGORIES) - set(filter(None, KOALA_CATEGORIES.values()))
        assert all(text_scores[category] == 0.0 for category in uncovered)


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


@pytest.mark.parametrize("normalize", [True, False])
def test_texts_are_normalised_before_scoring_when_the_catalog_says_so(
    stored_models: StoredModels, normalize: bool
) -> None:
    spec = ModelSpec(
        name="profanity-check",
        backend=Backend.SKLEARN,
        tag=stored_models.default,
        labels={"clean": None, "profane": "harassment"},
        normalize=normalize,
    )
    scorer = CategoryScorer(spec, bentoml.models.get(stored_models.default))
    plain_text = "you are a fucking idiot"
    fullwidth = "".join(chr(ord(char) + 0xFEE0) if char != " " else char for char in plain_text)
    plain, disguised = scorer.score([plain_text, fullwidth])
    assert (disguised == plain) is normalize
