"""Model backends: load a stored model and turn a batch of texts into per-label probabilities.

Each backend returns one probability per model label; the moderation core (service/moderation.py)
maps labels to the OpenAI categories through the catalog. Each runs one setting (a precision on a
device) that the core chose for the node (service/hardware.py). torch is imported only when a
transformers or ONNX model is loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import bentoml
import joblib
import numpy as np

from service.catalog import Backend, Device, Precision, Setting
from service.settings import ENV_PREFIX, SettingsError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

SKLEARN_PIPELINE_FILE = "pipeline.joblib"
# Longest token sequence scored; longer texts are truncated (DeBERTa-v3 was trained on 512).
MAX_TOKENS = 512
# Files of an ONNX export in the model store, by precision (tools/onnx_export.py writes them).
ONNX_FILES: Mapping[Precision, str] = {
    Precision.FP32: "model.onnx",
    Precision.INT8: "model.int8.onnx",
}
THREADS_ENV = ENV_PREFIX + "INFERENCE_THREADS"
LANES_ENV = ENV_PREFIX + "INFERENCE_LANES"


@dataclass(frozen=True)
class InferenceLayout:
    """How a pod's cores run the model: `lanes` model calls at once (service/batching.py), each
    on `threads_per_lane` intra-op threads."""

    lanes: int
    threads_per_lane: int


def inference_layout() -> InferenceLayout:
    """MODERATION_INFERENCE_THREADS threads in all (the Deployment sets the pod's CPU request;
    default: this machine's cores) in MODERATION_INFERENCE_LANES lanes (default: one lane per
    thread). On a CPU, one single-threaded call per core uses the cores better than one call
    spread over them: intra-op threads wait for each other at every operator, and a batch of
    texts of one length, which intra-op threads need to be busy, pads the others (measured in
    docs/performance.md "Lanes"). A GPU pod sets one lane: the device, not the cores, does the
    work, and larger batches keep it busy."""
    threads = _whole_number(THREADS_ENV) or len(os.sched_getaffinity(0))
    lanes = min(_whole_number(LANES_ENV) or threads, threads)
    return InferenceLayout(lanes=lanes, threads_per_lane=threads // lanes)


class LabelScorer(Protocol):
    labels: tuple[str, ...]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels))."""
        ...


class SklearnScorer:
    """A scikit-learn text pipeline with predict_proba (the offline default)."""

    def __init__(self, model: bentoml.Model, setting: Setting) -> None:
        del setting  # fp32 on the CPU only (the catalog refuses anything else)
        self._pipeline = joblib.load(model.path_of(SKLEARN_PIPELINE_FILE))
        id2label = model.info.metadata["id2label"]
        self.labels = tuple(id2label[str(index)] for index in self._pipeline.classes_)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self._pipeline.predict_proba(list(texts))


class TransformersScorer:
    """A Hugging Face sequence-classification model saved with save_pretrained, run by torch."""

    def __init__(self, model: bentoml.Model, setting: Setting) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _apply_thread_setting()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model.path)
        # Lanes call one scorer at once; a fast tokenizer that changes its padding or truncation
        # state (on its first call) while another call encodes fails with "Already borrowed".
        self._tokenizer_lock = threading.Lock()
        loaded = AutoModelForSequenceClassification.from_pretrained(model.path).eval()
        self._labels_from(loaded.config)
        precision = setting.precision
        self._device = "cuda" if setting.device is Device.GPU else "cpu"
        if self._device == "cuda":
            # A GPU runs the whole model in its half-precision dtype (no autocast needed).
            dtype = {Precision.FP16: torch.float16, Precision.BF16: torch.bfloat16}
            loaded = loaded.to("cuda", dtype=dtype.get(precision, torch.float32))
        elif precision is Precision.INT8:
            # int8 weights, activations quantised per batch: the linear layers are most of the
            # FLOPs of a BERT-sized encoder. torch.ao's eager API is deprecated but still shipped.
            loaded = torch.ao.quantization.quantize_dynamic(
                loaded, {torch.nn.Linear}, dtype=torch.qint8
            )
        self._model = loaded
        self._cpu_bf16 = self._device == "cpu" and precision is Precision.BF16

    def _labels_from(self, config: PretrainedConfig) -> None:
        self.labels = tuple(config.id2label[index] for index in range(config.num_labels))
        # Multi-label models score each label on its own; single-label ones share one softmax.
        self._multi_label = config.problem_type == "multi_label_classification"
        self._max_tokens = min(MAX_TOKENS, self._tokenizer.model_max_length)

    def _encode(self, texts: Sequence[str], tensors: str) -> Mapping[str, Any]:
        with self._tokenizer_lock:
            return self._tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors=tensors,
            )

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        if self._multi_label:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        encoded = self._encode(texts, "pt").to(self._device)
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._cpu_bf16),
        ):
            logits = self._model(**encoded).logits.float()
        return self._probabilities(logits.cpu().numpy())


class OnnxScorer(TransformersScorer):
    """The same classifier exported to ONNX (tools/onnx_export.py), run by ONNX Runtime: on the
    pod's GPU through the CUDA execution provider when the setting says so."""

    def __init__(self, model: bentoml.Model, setting: Setting) -> None:
        import onnxruntime
        from transformers import AutoConfig, AutoTokenizer

        threads = _apply_thread_setting()
        self._tokenizer = AutoTokenizer.from_pretrained(model.path)
        self._tokenizer_lock = threading.Lock()
        self._labels_from(AutoConfig.from_pretrained(model.path))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # Each lane's call runs on its own thread; no inter-op pool besides.
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if setting.device is Device.GPU:
            providers.insert(0, "CUDAExecutionProvider")
            # onnxruntime-gpu (the GPU image's) finds CUDA and cuDNN in torch's CUDA wheels
            onnxruntime.preload_dlls()
        self._session = onnxruntime.InferenceSession(
            model.path_of(ONNX_FILES[setting.precision]), options, providers=providers
        )
        if self._session.get_providers()[0] != providers[0]:  # ONNX Runtime only warns
            raise RuntimeError(f"ONNX Runtime could not start {providers[0]} for {setting}")
        self._inputs = {node.name for node in self._session.get_inputs()}

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self._encode(texts, "np")
        feed = {name: encoded[name].astype(np.int64) for name in self._inputs}
        (logits,) = self._session.run(["logits"], feed)
        return self._probabilities(logits.astype(np.float32))


def _apply_thread_setting() -> int:
    """Each lane's intra-op threads (inference_layout): torch and ONNX Runtime otherwise start one
    thread per core of the node, which oversubscribes a pod that may use only part of it."""
    threads = inference_layout().threads_per_lane
    import torch

    torch.set_num_threads(threads)
    return threads


def _whole_number(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}: must be a whole number >= 1, got {raw!r}")
    return int(raw)


Scorer = SklearnScorer | TransformersScorer

_BACKENDS: dict[Backend, type[Scorer]] = {
    Backend.SKLEARN: SklearnScorer,
    Backend.TRANSFORMERS: TransformersScorer,
    Backend.ONNX: OnnxScorer,
}


def load_scorer(backend: Backend, model: bentoml.Model, setting: Setting) -> LabelScorer:
    """The runtime for a stored model, in the setting chosen for this node."""
    return _BACKENDS[backend](model, setting)
