"""The batchable inference service: every catalog model loaded side by side in one process.

Concurrent requests reach `score` through BentoML's adaptive batching; one batch may mix models,
so items carry the model name and each model runs once per batch on its share of the texts.
"""

from __future__ import annotations

import time
from collections import defaultdict

import bentoml
from pydantic import BaseModel

from service.catalog import load_catalog
from service.categories import Category
from service.metrics import INFERENCE_LATENCY
from service.schemas import ModelCard
from service.store import LocalModel

CATALOG = load_catalog()
# Wait this long at most to fill a batch before answering 503 (CPU inference of a full batch of
# long texts takes seconds, so it is generous).
MAX_BATCH_LATENCY_MS = 10_000
MAX_BATCH_SIZE = 256


class ScoreItem(BaseModel):
    model: str
    text: str


class _Scorer:
    """Loads all catalog models before it reports ready (the front's /readyz waits for it)."""

    def __init__(self) -> None:
        from service.backends import CategoryScorer

        self.scorers = {
            spec.name: CategoryScorer(spec, getattr(self, _model_attribute(spec.name)))
            for spec in CATALOG.models
        }

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_BATCH_LATENCY_MS)
    def score(self, items: list[ScoreItem]) -> list[dict[Category, float]]:
        """Scores for every OpenAI category, one dict per item, in order."""
        positions: dict[str, list[int]] = defaultdict(list)
        for position, item in enumerate(items):
            positions[item.model].append(position)
        results: list[dict[Category, float]] = [{} for _ in items]
        for name, model_positions in positions.items():
            started = time.perf_counter()
            scores = self.scorers[name].score(
                [items[position].text for position in model_positions]
            )
            INFERENCE_LATENCY.labels(model=name).observe(time.perf_counter() - started)
            for position, text_scores in zip(model_positions, scores, strict=True):
                results[position] = text_scores
        return results

    @bentoml.api
    def models(self) -> list[ModelCard]:
        """The loaded models, default first."""
        cards = [
            ModelCard(
                id=spec.name,
                created=int(scorer.stored.info.creation_time.timestamp()),
                owned_by=spec.source or scorer.stored.info.labels.get("source", "local"),
                tag=str(scorer.stored.tag),
                backend=spec.backend.value,
                default=spec.name == CATALOG.default_model,
                aliases=list(spec.aliases),
                categories=sorted(spec.covered_categories),
            )
            for spec, scorer in ((spec, self.scorers[spec.name]) for spec in CATALOG.models)
        ]
        return sorted(cards, key=lambda card: not card.default)


def _model_attribute(name: str) -> str:
    return "model_" + name.replace("-", "_").replace(".", "_")


# Models must be class attributes for BentoML to pack them into the Bento.
for _spec in CATALOG.models:
    setattr(_Scorer, _model_attribute(_spec.name), LocalModel(_spec.tag))

Scorer = bentoml.service(
    name="scorer",
    workers=1,
    traffic={"timeout": 60},
    # BentoML 1.4's client replaces its session every `max_requests` calls by closing the old one,
    # which aborts calls still in flight on it (500s under load). The scorer is a local socket in
    # the same pod: keep one session for the process's lifetime.
    runner_connection={"max_requests": 1_000_000_000, "max_age": 1e9},
    # Requests are logged once, by the front (service/request_log.py).
    logging={"access": {"enabled": False}},
)(_Scorer)
