import bentoml
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from service.backends import CategoryScorer
from service.catalog import Backend, ModelSpec
from service.categories import CATEGORIES
from service.settings import SettingsError
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
    bf16_scorer = CategoryScorer(koala_spec(stored_models.koala, precision="bf16"), stored)
    assert _linear_output_dtypes(fp32_scorer, TEXTS) == {torch.float32}
    assert _linear_output_dtypes(bf16_scorer, TEXTS) == {torch.bfloat16}
    fp32, bf16 = fp32_scorer.score(TEXTS), bf16_scorer.score(TEXTS)
    assert fp32 != bf16  # bf16 rounding shows in the scores: the setting is not ignored
    for full, half in zip(fp32, bf16, strict=True):
        assert np.allclose(list(full.values()), list(half.values()), atol=0.05)


def test_int8_precision_quantises_every_linear_layer(stored_models: StoredModels) -> None:
    stored = bentoml.models.get(stored_models.koala)
    scorer = CategoryScorer(koala_spec(stored_models.koala, precision="int8"), stored)
    modules = list(scorer._scorer._model.modules())  # type: ignore[attr-defined]
    assert not [m for m in modules if type(m) is torch.nn.Linear]
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    for scores in scorer.score(TEXTS):
        assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_onnx_export_scores_like_torch_in_fp32_and_its_int8_copy_differs(
    stored_models: StoredModels,
) -> None:
    from service.onnx_export import export

    exported = export(stored_models.koala, name="tiny-koala-onnx-test")
    assert exported.info.labels["source"] == stored_models.koala
    torch_scores = CategoryScorer(
        koala_spec(stored_models.koala), bentoml.models.get(stored_models.koala)
    ).score(TEXTS)
    onnx_fp32 = CategoryScorer(koala_spec(str(exported.tag), backend="onnx"), exported)
    onnx_int8 = CategoryScorer(
        koala_spec(str(exported.tag), backend="onnx", precision="int8"), exported
    )
    for expected, observed in zip(torch_scores, onnx_fp32.score(TEXTS), strict=True):
        assert list(observed.values()) == pytest.approx(list(expected.values()), abs=1e-4)
    assert onnx_int8.score(TEXTS) != onnx_fp32.score(TEXTS)


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
