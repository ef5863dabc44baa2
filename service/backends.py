"""Model backends: load a stored model and turn a batch of texts into per-category scores.

Each backend returns one probability per model label; `CategoryScorer` maps labels to the OpenAI
categories through the catalog. Only the inference service imports this module (torch is heavy).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import bentoml
import joblib
import numpy as np

from service.catalog import Backend, ModelSpec
from service.categories import CATEGORIES, Category
from service.metrics import SCORES
from service.normalize import normalize

SKLEARN_PIPELINE_FILE = "pipeline.joblib"
# Longest token sequence scored; longer texts are truncated (DeBERTa-v3 was trained on 512).
MAX_TOKENS = 512


class LabelScorer(Protocol):
    labels: tuple[str, ...]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels))."""
        ...


class SklearnScorer:
    """A scikit-learn text pipeline with predict_proba (the offline default)."""

    def __init__(self, model: bentoml.Model) -> None:
        self._pipeline = joblib.load(model.path_of(SKLEARN_PIPELINE_FILE))
        id2label = model.info.metadata["id2label"]
        self.labels = tuple(id2label[str(index)] for index in self._pipeline.classes_)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self._pipeline.predict_proba(list(texts))


class TransformersScorer:
    """A Hugging Face sequence-classification model saved with save_pretrained."""

    def __init__(self, model: bentoml.Model) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model.path)
        self._model = AutoModelForSequenceClassification.from_pretrained(model.path).eval()
        config = self._model.config
        self.labels = tuple(config.id2label[index] for index in range(config.num_labels))
        # Multi-label models score each label on its own; single-label ones share one softmax.
        self._multi_label = config.problem_type == "multi_label_classification"
        # bf16 autocast roughly halves CPU latency on CPUs with avx512_bf16/AMX; off by default
        # because scores then differ from fp32 in the second decimal.
        self._bf16 = os.environ.get("MODERATION_BF16") == "1"
        self._max_tokens = min(MAX_TOKENS, self._tokenizer.model_max_length)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_tokens,
            return_tensors="pt",
        )
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16),
        ):
            logits = self._model(**encoded).logits.float()
        probabilities = torch.sigmoid(logits) if self._multi_label else logits.softmax(dim=-1)
        return probabilities.numpy()


_BACKENDS: dict[Backend, type[SklearnScorer | TransformersScorer]] = {
    Backend.SKLEARN: SklearnScorer,
    Backend.TRANSFORMERS: TransformersScorer,
}


class CategoryScorer:
    """One catalog model, loaded: texts in, a score for every OpenAI category out."""

    def __init__(self, spec: ModelSpec, model: bentoml.Model) -> None:
        self.spec = spec
        self.stored = model
        self._scorer: LabelScorer = _BACKENDS[spec.backend](model)
        unknown = set(spec.labels) - set(self._scorer.labels)
        if unknown:
            raise ValueError(
                f"catalog model {spec.name!r} maps labels {sorted(unknown)} that {model.tag} "
                f"does not have (it has {list(self._scorer.labels)})"
            )
        # column index of each model label feeding each category
        self._columns: dict[Category, list[int]] = {
            category: [
                index
                for index, label in enumerate(self._scorer.labels)
                if spec.labels.get(label) == category
            ]
            for category in spec.covered_categories
        }
        # The score distribution per category (what the dashboard compares between tracks).
        self._histograms = {
            category: SCORES.labels(model=spec.name, category=category)
            for category in spec.covered_categories
        }

    def score(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        """Every category per text; a category fed by several labels takes the highest.

        The one place texts reach a model: normalised here when the catalog says so.
        """
        if self.spec.normalize:
            texts = [normalize(text) for text in texts]
        probabilities = self._scorer.predict(texts)
        results: list[dict[Category, float]] = []
        for row in probabilities:
            scores = dict.fromkeys(CATEGORIES, 0.0)
            for category, columns in self._columns.items():
                scores[category] = float(np.clip(row[columns].max(), 0.0, 1.0))
                self._histograms[category].observe(scores[category])
            results.append(scores)
        return results
