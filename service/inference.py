"""The catalog's models, loaded side by side in the serving process.

The service class names every catalog model as a class attribute (`attach_models`), which is how
BentoML packs them into the Bento. `LoadedModels.load` turns those references into backends on the
inference thread (service/batching.py); models that cannot load raise `ModelLoadError`, with a
one-line message per model.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.backends import CategoryScorer
from service.catalog import load_catalog, name_key
from service.categories import Category
from service.schemas import ModelCard
from service.store import LocalModel

CATALOG = load_catalog()


class ModelLoadError(Exception):
    """Catalog models could not be loaded: one line per model, naming it and saying why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def model_attribute(name: str) -> str:
    """The class attribute a model is kept under (catalog names are unique under name_key)."""
    return "model_" + name_key(name)


def attach_models(service_class: type) -> None:
    """Name every catalog model as a class attribute, for BentoML to pack it into the Bento."""
    for spec in CATALOG.models:
        setattr(service_class, model_attribute(spec.name), LocalModel(spec.tag))


class LoadedModels:
    """Every catalog model, ready to score: what the inference thread calls."""

    def __init__(self, scorers: dict[str, CategoryScorer]) -> None:
        self._scorers = scorers

    @classmethod
    def load(cls, owner: object) -> LoadedModels:
        """Load every model that `owner` (the service instance) names, or say which cannot."""
        scorers: dict[str, CategoryScorer] = {}
        problems: list[str] = []
        for spec in CATALOG.models:
            try:
                stored = getattr(owner, model_attribute(spec.name))
                scorers[spec.name] = CategoryScorer(spec, stored)
            except Exception as error:  # whatever a broken model file raises
                reason = " ".join(str(error).split())[:500] or "no message"
                problems.append(
                    f"model {spec.name!r} ({spec.tag}) failed to load: "
                    f"{type(error).__name__}: {reason}"
                )
        if problems:
            raise ModelLoadError(problems)
        return cls(scorers)

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
                default=spec.name == CATALOG.default_model,
                aliases=list(spec.aliases),
                categories=sorted(spec.covered_categories),
            )
            for spec, scorer in ((spec, self._scorers[spec.name]) for spec in CATALOG.models)
        ]
        return sorted(cards, key=lambda card: not card.default)
