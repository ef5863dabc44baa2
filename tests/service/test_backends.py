from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import bentoml
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bench.deberta import KOALA_CATEGORIES, KOALA_LABELS, build_tiny_deberta
from service.backends import InferenceLayout, inference_layout
from service.catalog import Backend, ModelSpec
from service.categories import CATEGORIES
from service.moderation import CategoryScorer
from service.settings import SettingsError
from tests.fixtures.catalog import StoredModels, koala_spec, running
from tools.model_import import import_model

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


def _linear_output_dtypes(scorer: CategoryScorer, texts: list[str]) -> set[torch.dtype]:
    """The dtypes the model's linear layers produce while scoring `texts`."""
    seen: set[torch.dtype] = set()
    model = scorer._scorer._model  # type: ignore[attr-defined]
    hooks = [
        module.register_forward_hook(lambda _m, _i, output: seen.add(output.dtype))
        for module in model.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        scorer.score(texts)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_bf16_precision_runs_the_linear_layers_in_bf16_and_stays_close_to_fp32(
    stored_models: StoredModels,
) -> None:
    stored = bentoml.models.get(stored_models.koala)
    fp32_scorer = CategoryScorer(koala_spec(stored_models.koala), stored)
    bf16_scorer = CategoryScorer(koala_spec(stored_models.koala), stored, running("bf16"))
    assert _linear_output_dtypes(fp32_scorer, TEXTS) == {torch.float32}
    assert _linear_output_dtypes(bf16_scorer, TEXTS) == {torch.bfloat16}
    fp32, bf16 = fp32_scorer.score(TEXTS), bf16_scorer.score(TEXTS)
    assert fp32 != bf16  # bf16 rounding shows in the scores: the setting is not ignored
    for full, half in zip(fp32, bf16, strict=True):
        assert np.allclose(list(full.values()), list(half.values()), atol=0.05)


def test_int8_precision_quantises_every_linear_layer(stored_models: StoredModels) -> None:
    stored = bentoml.models.get(stored_models.koala)
    scorer = CategoryScorer(koala_spec(stored_models.koala), stored, running("int8"))
    modules = list(scorer._scorer._model.modules())  # type: ignore[attr-defined]
    assert not [m for m in modules if type(m) is torch.nn.Linear]
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    for scores in scorer.score(TEXTS):
        assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_inference_threads_follow_the_setting_and_a_bad_value_is_refused(
    stored_models: StoredModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = bentoml.models.get(stored_models.koala)
    before = torch.get_num_threads()
    monkeypatch.setenv("MODERATION_INFERENCE_THREADS", "1")
    try:
        CategoryScorer(koala_spec(stored_models.koala), stored)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("MODERATION_INFERENCE_THREADS", "two")
    with pytest.raises(SettingsError, match="MODERATION_INFERENCE_THREADS"):
        CategoryScorer(koala_spec(stored_models.koala), stored)


def test_inference_layout_splits_the_threads_into_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODERATION_INFERENCE_THREADS", "4")
    monkeypatch.delenv("MODERATION_INFERENCE_LANES", raising=False)
    assert inference_layout() == InferenceLayout(lanes=4, threads_per_lane=1)
    monkeypatch.setenv("MODERATION_INFERENCE_LANES", "2")
    assert inference_layout() == InferenceLayout(lanes=2, threads_per_lane=2)
    monkeypatch.setenv("MODERATION_INFERENCE_LANES", "1")  # a GPU pod
    assert inference_layout() == InferenceLayout(lanes=1, threads_per_lane=4)
    monkeypatch.setenv("MODERATION_INFERENCE_LANES", "8")  # never more lanes than threads
    assert inference_layout() == InferenceLayout(lanes=4, threads_per_lane=1)
    monkeypatch.setenv("MODERATION_INFERENCE_LANES", "0")
    with pytest.raises(SettingsError, match="MODERATION_INFERENCE_LANES"):
        inference_layout()


def test_lanes_may_call_one_scorer_at_once(stored_models: StoredModels) -> None:
    """What the lanes do: one scorer, several threads, texts of varying length; each result is
    the text's own, as scored alone."""
    scorer = CategoryScorer(
        koala_spec(stored_models.koala), bentoml.models.get(stored_models.koala)
    )
    texts = [f"{'word ' * (index % 13)}number {index}" for index in range(64)]
    alone = {text: scorer.score([text])[0] for text in texts}
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: scorer.score([text, text * 2])[0], texts))
    for text, scores in zip(texts, together, strict=True):
        assert scores == pytest.approx(alone[text], abs=1e-5)


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
