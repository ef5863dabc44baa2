"""The benchmark's model: a DeBERTa-v3-base-shaped classifier with random weights, built offline.

It has KoalaAI/Text-Moderation's architecture, sizes and nine labels, so it costs the same compute
per token as the production model, without a Hub download; its tokenizer has one piece per word of
the benchmark's texts, so texts are about as many tokens long as with DeBERTa-v3's vocabulary.
The scores are random (this measures speed, not quality). Built once into the BentoML model store
under a tag whose version is a digest of what the build depends on, so later runs start at once
and an edit to the builder builds afresh; `--quick` uses a tiny model of the same builder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound

from bench import deberta
from bench.deberta import DEBERTA_V3_BASE, KOALA_CATEGORIES, KOALA_LABELS, TINY
from bench.texts import corpus
from service.catalog import FP32_CPU, Backend, ModelSpec
from tools import deberta_positions, onnx_export

SEED = 0
BASE_NAME = "bench-deberta-v3-base"
TINY_NAME = "bench-deberta-tiny"
CATALOG_NAME = "bench-deberta"
# They write the weights and the tokenizer: another version may write other bytes.
BUILD_PACKAGES = ("torch", "transformers", "tokenizers")
# They trace, fuse and quantise the ONNX export: another version may export another graph.
EXPORT_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime")
EXPORT_SOURCES = (onnx_export, deberta_positions)


def _digest(inputs: object) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def bench_model_tag(quick: bool = False) -> bentoml.Tag:
    """The benchmark model's tag: its version digests the builder's code (bench/deberta.py and
    this module, which choose the shapes, seed and labels), the corpus its tokenizer learns and
    the versions of the packages that write it; a stored model under this tag is what the
    builder builds now."""
    inputs = {
        "sources": [Path(source).read_text() for source in (deberta.__file__, __file__)],
        "corpus": list(corpus()),
        "packages": {package: metadata.version(package) for package in BUILD_PACKAGES},
    }
    return bentoml.Tag(TINY_NAME if quick else BASE_NAME, f"random-seed{SEED}-{_digest(inputs)}")


def ensure_bench_model(quick: bool = False) -> bentoml.Tag:
    """The benchmark model's tag, building and storing it first if the store lacks it; earlier
    builds (other versions of its name) are deleted: the base-sized one takes 0.7 GB."""
    tag = bench_model_tag(quick)
    try:
        return bentoml.models.get(tag).tag
    except NotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-model-") as work:
        directory = deberta.build_tiny_deberta(
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
    for earlier in bentoml.models.list(tag.name):
        if earlier.tag != model.tag:
            bentoml.models.delete(earlier.tag)
    return model.tag


def ensure_bench_onnx(tag: bentoml.Tag) -> bentoml.Tag:
    """The ONNX export (tools/onnx_export.py) of the benchmark model `tag`, exporting it first if
    the store lacks it. Its version is the model's plus a digest of the export's code and
    packages, so it follows both the model's builder and the export recipe."""
    recipe = {
        "sources": [Path(str(module.__file__)).read_text() for module in EXPORT_SOURCES],
        "packages": {package: metadata.version(package) for package in EXPORT_PACKAGES},
    }
    name = bentoml.Tag(f"{tag.name}-onnx", f"{tag.version}-{_digest(recipe)[:8]}")
    try:
        return bentoml.models.get(name).tag
    except NotFound:
        pass
    exported = onnx_export.export(str(tag), name.name, name.version).tag
    for earlier in bentoml.models.list(name.name):
        if earlier.tag != exported:
            bentoml.models.delete(earlier.tag)
    return exported


# What `make validate-precision` passed for the benchmark model (docs/performance.md): every CPU
# setting of its torch model, and fp32 and int8 of its ONNX export.
BENCH_VALIDATED: dict[Backend, tuple[str, ...]] = {
    Backend.TRANSFORMERS: ("fp32", "bf16", "int8"),
    Backend.ONNX: ("fp32", "int8"),
}


def bench_spec(tag: bentoml.Tag, backend: Backend = Backend.TRANSFORMERS) -> ModelSpec:
    """The catalog entry serving the benchmark model on `backend`, in its validated settings."""
    return ModelSpec.model_validate(
        {
            "name": CATALOG_NAME,
            "backend": backend.value,
            "validated": list(BENCH_VALIDATED[backend]),
            "tag": str(ensure_bench_onnx(tag) if backend is Backend.ONNX else tag),
            "source": "bench/models.py",
            "labels": KOALA_CATEGORIES,
        }
    )


def torch_fp32(spec: ModelSpec) -> ModelSpec:
    """The torch model `spec` is (or, for an ONNX export, was exported from) in fp32 on the CPU:
    the reference every setting is validated against, and what the MVP ran."""
    onnx = spec.backend is Backend.ONNX
    return ModelSpec.model_validate(
        {
            **spec.model_dump(),
            "backend": Backend.TRANSFORMERS if onnx else spec.backend,
            "validated": [FP32_CPU],
            "tag": bentoml.models.get(spec.tag).info.labels["source"] if onnx else spec.tag,
        }
    )
