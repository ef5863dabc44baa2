"""Export a stored transformers classifier for ONNX Runtime: `make export-onnx TAG=<name:version>`.

An explicit, offline command (never a side effect of build or serve): it reads the stored model,
exports it with torch.onnx's torch.export-based exporter (fp32, dynamic batch and sequence axes;
a DeBERTa-v2/v3 model's relative-position attention cut to the positions each input has,
tools/deberta_positions.py), fuses each layer's LayerNorm, residual add and GELU into ONNX
Runtime's fused operators (its transformer optimizer), checks the result against the unchanged
torch model on short and long inputs, writes a dynamically quantised int8 copy next to it with
ONNX Runtime's quantiser, and stores both with the tokenizer and config as a new model
`<name>-onnx:<version>` (by default the source's version, label `source` naming the torch model).
The catalog then serves it with `backend: onnx` and `validated: [fp32]`, plus `int8` where
`make validate-precision` passes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import yaml

from service.backends import ONNX_FILES
from service.catalog import Precision
from tools.deberta_positions import windowed_position_attention
from tools.model_import import catalog_entry

OPSET = 18
# Exported and torch logits of the fp32 export must agree this closely (float rounding only).
MAX_EXPORT_ERROR = 1e-3
_CHECK_TEXTS = ("hello there", "a somewhat longer sentence, to vary the sequence length", "x")
_MODEL_FILES = ("*.safetensors", "*.bin", "*.onnx")


def export(tag: str, name: str | None = None, version: str | None = None) -> bentoml.Model:
    """Export `tag` to ONNX (fp32 and int8) and store the result as `name:version` (default: the
    source's name + `-onnx` and its version); return the new store model."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = bentoml.models.get(tag)
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    model = AutoModelForSequenceClassification.from_pretrained(source.path).eval()
    sample = tokenizer(list(_CHECK_TEXTS), padding=True, return_tensors="pt")
    inputs = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in sample]
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as work:
        exported = Path(work) / "exported.onnx"
        fp32 = Path(work) / ONNX_FILES[Precision.FP32]
        # torch.export's exporter: it computes each shape once, where the TorchScript tracer
        # recomputed them in every layer (DeBERTa-v3-base: 929 operators against 4,554): 7% fewer
        # CPU seconds per text in int8 (docs/performance.md).
        with windowed_position_attention(model):
            program = torch.onnx.export(
                model,
                kwargs={key: sample[key] for key in inputs},
                input_names=inputs,
                output_names=["logits"],
                dynamic_shapes={key: {0: batch, 1: sequence} for key in inputs},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        assert program is not None
        graph = program.model_proto
        # The exporter annotates every tensor's shape; once the optimizer below fuses operators
        # some of those annotations are stale, and the quantiser's shape inference fails on them.
        del graph.graph.value_info[:]
        onnx.save(graph, exported)
        # The BERT fusions also match DeBERTa's LayerNorm, residual and GELU (attention stays
        # unfused): ~20% fewer CPU seconds per text in int8 (docs/performance.md).
        fused = optimize_model(
            str(exported),
            model_type="bert",
            num_heads=model.config.num_attention_heads,
            hidden_size=model.config.hidden_size,
            opt_level=0,
        )
        fused.save_model_to_file(str(fp32))
        _check_against_torch(fp32, model, tokenizer)
        quantize_dynamic(
            fp32,
            Path(work) / ONNX_FILES[Precision.INT8],
            weight_type=QuantType.QInt8,
            # the fused operators come from ONNX Runtime's own domain, which shape inference
            # does not know: their outputs are fp32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        with bentoml.models.create(
            bentoml.Tag(name or f"{source.tag.name}-onnx", version or source.tag.version),
            labels={"source": str(source.tag), "revision": source.info.labels.get("revision", "")},
            metadata={**source.info.metadata, "backend": "onnx", "opset": OPSET},
        ) as stored:
            shutil.copytree(
                source.path,
                stored.path,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(*_MODEL_FILES),
            )
            for file in ONNX_FILES.values():
                shutil.copy(Path(work) / file, stored.path_of(file))
    return stored


def _check_against_torch(path: Path, model: Any, tokenizer: Any) -> None:
    """The short texts as one batch, then one text of the model's full length: DeBERTa-v3 buckets
    relative positions logarithmically beyond 128 tokens, and its position window is widest."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    longest = model.config.max_position_embeddings
    for texts in (_CHECK_TEXTS[::-1], (" ".join(_CHECK_TEXTS) * longest,)):
        encoded = tokenizer(
            list(texts), padding=True, truncation=True, max_length=longest, return_tensors="np"
        )
        feed = {node.name: encoded[node.name].astype(np.int64) for node in session.get_inputs()}
        (exported,) = session.run(["logits"], feed)
        with torch.inference_mode():
            expected = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
        error = float(np.abs(exported - expected).max())
        if error > MAX_EXPORT_ERROR:
            raise RuntimeError(
                f"ONNX export of {path.name} differs from torch by {error:.2g} "
                f"on {feed['input_ids'].shape[1]} tokens"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.onnx_export", description=__doc__)
    parser.add_argument("--tag", required=True, help="stored transformers model, name:version")
    parser.add_argument("--name", help="store name of the export (default: <name>-onnx)")
    args = parser.parse_args(argv)
    stored = export(args.tag, args.name)
    # fp32 is the export of the validated model; int8 joins once `make validate-precision` passes.
    entry = {**catalog_entry(stored), "backend": "onnx", "validated": ["fp32"]}
    print("Catalog entry (map each label to an OpenAI category, as for the source model):")
    print(yaml.safe_dump([entry], sort_keys=False), end="")
    print(stored.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
