"""The model catalog: which models the service loads, how their labels map to OpenAI categories.

The catalog is a YAML file (service/catalog.yaml, or the path in MODERATION_CATALOG). It is read at
import time because BentoML packs the models that the service classes name as attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.categories import CATEGORIES, Category

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
CATALOG_ENV = "MODERATION_CATALOG"

ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


class Backend(StrEnum):
    """How a stored model is loaded and run."""

    SKLEARN = "sklearn"  # a joblib-saved scikit-learn text pipeline with predict_proba
    TRANSFORMERS = "transformers"  # a Hugging Face sequence-classification model (save_pretrained)
    ONNX = "onnx"  # the same model exported for ONNX Runtime (`make export-onnx`)


class Precision(StrEnum):
    """The arithmetic a model runs in; `make validate-precision` measures its cost in scores."""

    FP32 = "fp32"
    BF16 = "bf16"  # bfloat16: torch autocast on CPUs with avx512_bf16 / AMX, or a GPU's own dtype
    FP16 = "fp16"  # float16: GPUs only (DeBERTa in fp16 has dtype problems on CPU paths)
    INT8 = "int8"  # dynamic quantisation: int8 weights and activations in the linear layers


class Device(StrEnum):
    """Where a model runs: the node's CPU, or the pod's GPU (CUDA)."""

    CPU = "cpu"
    GPU = "gpu"


# What each backend can run on each device; anything else is refused when the catalog is read.
# ONNX Runtime's CUDA provider runs the fp32 export (its int8 export is a CPU-only graph).
PRECISIONS: dict[tuple[Backend, Device], frozenset[Precision]] = {
    (Backend.SKLEARN, Device.CPU): frozenset({Precision.FP32}),
    (Backend.SKLEARN, Device.GPU): frozenset(),
    (Backend.TRANSFORMERS, Device.CPU): frozenset({Precision.FP32, Precision.BF16, Precision.INT8}),
    (Backend.TRANSFORMERS, Device.GPU): frozenset({Precision.FP32, Precision.FP16, Precision.BF16}),
    (Backend.ONNX, Device.CPU): frozenset({Precision.FP32, Precision.INT8}),
    (Backend.ONNX, Device.GPU): frozenset({Precision.FP32}),
}


class Setting(BaseModel):
    """One way to run a model: a precision on a device. Written `int8` (CPU) or `gpu:fp16`."""

    model_config = ConfigDict(frozen=True)

    precision: Precision
    device: Device = Device.CPU

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if isinstance(value, str):
            device, _, precision = value.rpartition(":")
            return {"precision": precision, "device": device or Device.CPU}
        return value

    def __str__(self) -> str:
        prefix = "" if self.device is Device.CPU else f"{self.device.value}:"
        return prefix + self.precision.value


FP32_CPU = Setting(precision=Precision.FP32)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Runtime(_Strict):
    """How a model may run: its backend and the settings validated for it. The stack config
    describes its release's model with it too (infra/config.py `workload.model`)."""

    backend: Backend
    validated: tuple[Setting, ...] = Field(
        default=(FP32_CPU,),
        min_length=1,
        description="Every setting `make validate-precision` passed for this model (>= 99% "
        "top-category agreement with fp32): `fp32`, `bf16`, `int8` on CPUs, `gpu:fp32`, "
        "`gpu:fp16`, `gpu:bf16` on GPUs. The service runs the fastest one its node runs natively "
        "(service/hardware.py).",
    )

    @model_validator(mode="before")
    @classmethod
    def _single_precision_means_that_one_setting(cls, value: object) -> object:
        """Catalogs written before `validated` named one `precision`: that one was validated."""
        if isinstance(value, dict) and "precision" in value and "validated" not in value:
            value = {**value, "validated": [value["precision"]]}
            del value["precision"]
        return value

    @model_validator(mode="after")
    def _settings_fit_backend(self) -> Self:
        for setting in self.validated:
            allowed = PRECISIONS[self.backend, setting.device]
            if setting.precision not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise ValueError(
                    f"setting {str(setting)!r} is not available for backend "
                    f"{self.backend.value!r} on {setting.device.value} (allowed: {names})"
                )
        return self


class ModelSpec(Runtime):
    """One servable model."""

    name: ModelName = Field(description="What clients pass as `model`.")
    aliases: tuple[str, ...] = Field(
        default=(), description="Other names accepted as `model`, e.g. OpenAI's model names."
    )
    tag: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*:[a-z0-9._-]+$",
        description="BentoML model-store tag, pinned to a version (name:version).",
    )
    source: str | None = Field(
        default=None, description="Where the stored model came from (Hub id, PyPI package)."
    )
    revision: str | None = Field(default=None, description="Pinned source revision.")
    labels: dict[str, Category | None] = Field(
        description="Model label -> OpenAI category; null for labels that mean 'nothing found'."
    )
    thresholds: dict[Category, Threshold] = Field(
        default_factory=dict, description="Per-category score at or over which it is flagged."
    )
    default_threshold: Threshold = 0.5
    description: str = Field(default="", description="What the model really detects.")
    normalize: bool = Field(
        default=True,
        description="Score the text as a reader sees it (service/normalize.py): fullwidth, "
        "invisible, look-alike and spelt-out characters folded first. Off for non-Latin models.",
    )

    @model_validator(mode="after")
    def _thresholds_name_covered_categories(self) -> Self:
        stray = set(self.thresholds) - self.covered_categories
        if stray:
            raise ValueError(f"thresholds for categories no label maps to: {sorted(stray)}")
        return self

    @cached_property
    def covered_categories(self) -> frozenset[Category]:
        """The categories this model really scores; the others are always reported as 0.0."""
        return frozenset(category for category in self.labels.values() if category is not None)

    def threshold(self, category: Category) -> float:
        return self.thresholds.get(category, self.default_threshold)

    def flags(self, scores: Mapping[Category, float]) -> dict[Category, bool]:
        """The service's decision per category: covered and at or over its threshold.

        `make compare` (bench/compare.py) decides with this; a test pins it to the API's answers.
        """
        return {
            category: category in self.covered_categories
            and scores[category] >= self.threshold(category)
            for category in CATEGORIES
        }


class Catalog(_Strict):
    """All models the service loads side by side, and the one used when a request names none."""

    default_model: ModelName
    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_distinct_and_default_exists(self) -> Self:
        seen: dict[str, str] = {}  # name_key -> the name or alias that had it first
        for spec in self.models:
            names = [(spec.name, f"model {spec.name!r}")]
            names += [(alias, f"alias {alias!r} of {spec.name!r}") for alias in spec.aliases]
            for name, described in names:
                if (key := name_key(name)) in seen:
                    raise ValueError(
                        f"{described} clashes with {seen[key]}: model names and aliases must "
                        "differ in more than '-', '.' and '_'"
                    )
                seen[key] = described
        if self.default_model not in {spec.name for spec in self.models}:
            raise ValueError(f"default_model {self.default_model!r} is not a model in the catalog")
        return self

    def find(self, name: str | None) -> ModelSpec | None:
        """The model a request asks for (by name or alias); the default when it names none."""
        wanted = self.default_model if name is None else name
        return next((spec for spec in self.models if wanted in (spec.name, *spec.aliases)), None)

    @property
    def default(self) -> ModelSpec:
        spec = self.find(None)
        assert spec is not None  # guaranteed by the validator
        return spec


def name_key(name: str) -> str:
    """What must be unique among model names and aliases.

    The service keeps each model under a Python identifier made from its name ('-' and '.'
    become '_'), so `a-b`, `a.b` and `a_b` would be one model there; to a client they look alike.
    """
    return name.replace("-", "_").replace(".", "_")


def model_attribute(name: str) -> str:
    """The service class attribute a model is kept under (unique among names under name_key)."""
    return "model_" + name_key(name)


def catalog_path() -> Path:
    return Path(os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_PATH)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a catalog file; errors name the file and the offending field."""
    path = path or catalog_path()
    with path.open(encoding="utf-8") as stream:
        raw = yaml.safe_load(stream)
    try:
        return Catalog.model_validate(raw)
    except ValueError as error:
        raise ValueError(f"invalid model catalog {path}: {error}") from error
