"""The benchmark's model: a DeBERTa-v3-base-shaped classifier with random weights, built offline.

It has KoalaAI/Text-Moderation's architecture, sizes and nine labels, so it costs the same compute
per token as the production model, without a Hub download; its tokenizer has one piece per word of
the benchmark's texts, so texts are about as many tokens long as with DeBERTa-v3's vocabulary.
The scores are random (this measures speed, not quality). Built once into the BentoML model store
under a fixed tag, so later runs start at once; `--quick` uses the tests' tiny model instead.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound

from bench.texts import corpus
from service.catalog import ModelSpec, Precision
from tests.fixtures.tiny_models import (
    DEBERTA_V3_BASE,
    KOALA_CATEGORIES,
    KOALA_LABELS,
    TINY,
    build_tiny_deberta,
)

SEED = 0
# Bump the version when the builder changes, so that a cached model is never stale.
BASE_TAG = bentoml.Tag("bench-deberta-v3-base", f"random-seed{SEED}-v1")
TINY_TAG = bentoml.Tag("bench-deberta-tiny", f"random-seed{SEED}-v1")
CATALOG_NAME = "bench-deberta"


def ensure_bench_model(quick: bool = False) -> bentoml.Tag:
    """The benchmark model's tag, building and storing it first if the store lacks it."""
    tag = TINY_TAG if quick else BASE_TAG
    try:
        return bentoml.models.get(tag).tag
    except NotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-model-") as work:
        directory = build_tiny_deberta(
            Path(work) / "model",
            seed=SEED,
            shape=TINY if quick else DEBERTA_V3_BASE,
            corpus=corpus(),
            whole_words=True,
        )
        with bentoml.models.create(
            tag,
            labels={"source": "bench/models.py (random weights)", "revision": tag.version or ""},
            metadata={
                "id2label": {str(index): label for index, label in enumerate(KOALA_LABELS)},
                "backend": "transformers",
            },
        ) as model:
            shutil.copytree(directory, model.path, dirs_exist_ok=True)
    return model.tag


def bench_spec(tag: bentoml.Tag, precision: Precision) -> ModelSpec:
    """The catalog entry serving the benchmark model at `precision`."""
    return ModelSpec.model_validate(
        {
            "name": CATALOG_NAME,
            "backend": "transformers",
            "precision": precision,
            "tag": str(tag),
            "source": "bench/models.py",
            "labels": KOALA_CATEGORIES,
        }
    )
