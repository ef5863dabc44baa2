"""The moderation core, with no HTTP in it: catalog lookup, batch submit, category mapping and
thresholds, from texts to OpenAI-shaped results.

The service class (service/app.py) names every catalog model as a class attribute, which is how
BentoML packs them into the Bento; `Moderator.start` turns those references into loaded models on
an inference thread (service/batching.py). A model that cannot load leaves the moderator unready,
with one log line per model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import bentoml
import numpy as np

from service.backends import LabelScorer, inference_layout, load_scorer
from service.batching import Batcher, BatchLimits
from service.catalog import Catalog, ModelSpec, model_attribute
from service.categories import CATEGORIES, Category
from service.hardware import (
    Choice,
    Hardware,
    choice_on_this_node,
    choose_setting,
    detect_hardware,
    uses_gpu_runtime,
)
from service.metrics import BATCH_SIZE, FLAGGED, INFERENCE_LATENCY, INPUT_CHARS, MODEL_INFO, SCORES
from service.normalize import normalize
from service.request_log import log_event
from service.schemas import ModelCard, ModerationResult
from service.settings import Settings


class ModelLoadError(Exception):
    """Catalog models could not be loaded: one line per model, naming it and saying why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NotReady(Exception):
    """The models are not loaded: still loading, or one failed (`load_failed`)."""

    def __init__(self, load_failed: bool) -> None:
        super().__init__("a model failed to load" if load_failed else "the models are loading")
        self.load_failed = load_failed


class CategoryScorer:
    """One catalog model, loaded in the setting chosen for this node: texts in, a score for every
    OpenAI category out."""

    def __init__(self, spec: ModelSpec, model: bentoml.Model, choice: Choice | None = None) -> None:
        """`choice`: the setting to run (the benchmark and the precision gate name one); by
        default the fastest validated one this node runs natively."""
        self.spec = spec
        self.stored = model
        self.choice = choice or choice_on_this_node(spec)
        self._scorer: LabelScorer = load_scorer(spec.backend, model, self.choice.setting)
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
        if spec.normalize:
            normalize("\u00e9")  # builds its tables now (~0.1 s), not on the first request

    def prepare(self, texts: Sequence[str], max_chars: int = sys.maxsize) -> list[str]:
        """What reaches the model: each text normalised when the catalog says so, and cut to
        `max_chars` (normalisation can make many characters of one)."""
        if self.spec.normalize:
            return [normalize(text, max_chars) for text in texts]
        return [text[:max_chars] for text in texts]

    def score(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        """Every category per text (prepared here); see score_prepared."""
        return self.score_prepared(self.prepare(texts))

    def score_prepared(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        """Every category per text as `prepare` made it; a category fed by several labels takes
        the highest."""
        probabilities = self._scorer.predict(texts)
        results: list[dict[Category, float]] = []
        for row in probabilities:
            scores = dict.fromkeys(CATEGORIES, 0.0)
            for category, columns in self._columns.items():
                scores[category] = float(np.clip(row[columns].max(), 0.0, 1.0))
                self._histograms[category].observe(scores[category])
            results.append(scores)
        return results


def moderate(spec: ModelSpec, scores: dict[Category, float]) -> ModerationResult:
    """Apply the catalog thresholds: a category is flagged at or over its threshold."""
    flags = spec.flags(scores)
    return ModerationResult(
        flagged=any(flags.values()),
        categories=flags,
        category_scores={category: scores[category] for category in CATEGORIES},
    )


class LoadedModels:
    """Every catalog model, ready to score: what the inference lanes call, several at once."""

    def __init__(self, catalog: Catalog, scorers: dict[str, CategoryScorer]) -> None:
        self._catalog = catalog
        self._scorers = scorers

    @classmethod
    def load(cls, catalog: Catalog, owner: object, hardware: Hardware) -> LoadedModels:
        """Load every model that `owner` (the service instance) names, each in the fastest
        validated setting `hardware` runs natively (said in one log line and on
        `moderation_model_info`), or say which cannot load."""
        scorers: dict[str, CategoryScorer] = {}
        problems: list[str] = []
        for spec in catalog.models:
            choice = choose_setting(spec, hardware)
            announce(spec, choice)
            try:
                stored = getattr(owner, model_attribute(spec.name))
                scorers[spec.name] = CategoryScorer(spec, stored, choice)
            except Exception as error:  # whatever a broken model file raises
                reason = " ".join(str(error).split())[:500] or "no message"
                problems.append(
                    f"model {spec.name!r} ({spec.tag}) failed to load: "
                    f"{type(error).__name__}: {reason}"
                )
        if problems:
            raise ModelLoadError(problems)
        return cls(catalog, scorers)

    def prepare(self, model: str, texts: Sequence[str], max_chars: int) -> list[str]:
        """The texts as `model` is to see them, each at most `max_chars` characters."""
        return self._scorers[model].prepare(texts, max_chars)

    def score(self, model: str, texts: Sequence[str]) -> list[dict[Category, float]]:
        """Scores for every OpenAI category, one dict per prepared text, in order."""
        return self._scorers[model].score_prepared(texts)

    def cards(self) -> list[ModelCard]:
        """The loaded models, default first."""
        cards = [
            ModelCard(
                id=spec.name,
                created=int(scorer.stored.info.creation_time.timestamp()),
                owned_by=spec.source or scorer.stored.info.labels.get("source", "local"),
                tag=str(scorer.stored.tag),
                backend=spec.backend.value,
                default=spec.name == self._catalog.default_model,
                aliases=list(spec.aliases),
                categories=sorted(spec.covered_categories),
            )
            for spec, scorer in ((spec, self._scorers[spec.name]) for spec in self._catalog.models)
        ]
        return sorted(cards, key=lambda card: not card.default)


class Moderator:
    """The catalog's models behind one in-process batcher: what a moderation request runs."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.max_input_chars = settings.max_input_chars
        self.models: LoadedModels | None = None
        self.load_failed = False
        self.batcher: Batcher[dict[Category, float]] = Batcher(
            self._score,
            BatchLimits(
                max_texts=settings.max_batch_texts,
                max_chars=settings.max_batch_chars,
                max_queued_requests=settings.max_queued_requests,
                max_queued_texts=settings.max_queued_texts,
            ),
            observe=_observe_batch,
            lanes=inference_layout().lanes,
        )

    def start(self, owner: object) -> None:
        """Load the models `owner` names on an inference thread, before any batch (requests are
        refused until then)."""
        self.batcher.start_on_thread(lambda: self._load(owner))

    def _load(self, owner: object) -> None:
        """A model that cannot load leaves the pod unready, said in one line (no retry loop)."""
        with_gpu = any(uses_gpu_runtime(spec) for spec in self.catalog.models)
        try:
            self.models = LoadedModels.load(self.catalog, owner, detect_hardware(with_gpu))
        except ModelLoadError as error:
            self.load_failed = True
            for problem in error.problems:
                log_event("ERROR", problem)

    def _score(self, model: str, texts: list[str]) -> list[dict[Category, float]]:
        assert self.models is not None  # requests reach the batcher only once loaded
        return self.models.score(model, texts)

    def loaded(self) -> LoadedModels:
        """The loaded models; NotReady until every one is."""
        if self.models is None:
            raise NotReady(self.load_failed)
        return self.models

    def find(self, name: str | None) -> ModelSpec | None:
        """The catalog model a request names (or the default), or None."""
        return self.catalog.find(name)

    def prepare(self, spec: ModelSpec, texts: Sequence[str]) -> list[str]:
        """What `spec`'s model is to see: normalised when the catalog says so, each text cut to
        the per-text limit. Every limit after this counts these texts, not those sent."""
        return self.loaded().prepare(spec.name, texts, self.max_input_chars)

    async def moderate(
        self, spec: ModelSpec, texts: list[str], client: str | None = None
    ) -> list[ModerationResult]:
        """Score `texts` (as `prepare` made them) in the next batches, taking turns with the
        other clients (API key ids), and apply the thresholds; raises Overloaded when the queue,
        or this client's share of it, is full (service/batching.py)."""
        scores = await self.batcher.submit(spec.name, texts, client)
        results = [moderate(spec, text_scores) for text_scores in scores]
        _observe(spec, texts, results)
        return results

    async def stop(self) -> None:
        await self.batcher.stop()


def announce(spec: ModelSpec, choice: Choice) -> None:
    """One log line and the `moderation_model_info` series: what runs, and why. A fallback from a
    validated setting the node lacks is a WARNING, never silent."""
    setting = choice.setting
    log_event(
        "WARNING" if choice.fallback else "INFO",
        f"model {spec.name!r} runs {spec.backend.value} {setting}: {choice.reason}",
    )
    MODEL_INFO.labels(
        model=spec.name,
        backend=spec.backend.value,
        precision=setting.precision.value,
        device=setting.device.value,
        fallback=str(choice.fallback).lower(),
        reason=choice.reason,
    ).set(1)


def _observe(spec: ModelSpec, texts: list[str], results: list[ModerationResult]) -> None:
    for text in texts:
        INPUT_CHARS.labels(model=spec.name).observe(len(text))
    for result in results:
        for category, flagged in result.categories.items():
            if flagged:
                FLAGGED.labels(model=spec.name, category=category).inc()


def _observe_batch(model: str, texts: int, seconds: float) -> None:
    BATCH_SIZE.labels(model=model).observe(texts)
    INFERENCE_LATENCY.labels(model=model).observe(seconds)
