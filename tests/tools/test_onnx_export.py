"""`make export-onnx` (tools/onnx_export.py): the ONNX Runtime export of a stored model scores like
the torch model it came from in fp32, its layers run ONNX Runtime's fused operators, its position
attention multiplies only the positions an input has, and its int8 copy is really another model."""

import json
from collections import Counter
from pathlib import Path

import bentoml
import numpy as np
import onnx
import onnxruntime
import pytest

from service.moderation import CategoryScorer
from tests.fixtures.catalog import StoredModels, koala_spec, running
from tools.onnx_export import export

TEXTS = ["hello there", "I will hurt you", "", "x\x00\x1b y " * 40]


@pytest.fixture(scope="module")
def exported(stored_models: StoredModels) -> bentoml.Model:
    return export(stored_models.koala, name="tiny-koala-onnx-test")


def test_onnx_export_is_fused_scores_like_torch_in_fp32_and_its_int8_copy_differs(
    stored_models: StoredModels, exported: bentoml.Model
) -> None:
    assert exported.info.labels["source"] == stored_models.koala
    torch_scores = CategoryScorer(
        koala_spec(stored_models.koala), bentoml.models.get(stored_models.koala)
    ).score(TEXTS)
    onnx_fp32 = CategoryScorer(koala_spec(str(exported.tag), backend="onnx"), exported)
    onnx_int8 = CategoryScorer(
        koala_spec(str(exported.tag), backend="onnx"), exported, running("int8")
    )
    for expected, observed in zip(torch_scores, onnx_fp32.score(TEXTS), strict=True):
        assert list(observed.values()) == pytest.approx(list(expected.values()), abs=1e-4)
    assert onnx_int8.score(TEXTS) != onnx_fp32.score(TEXTS)
    for file in ("model.onnx", "model.int8.onnx"):
        operators = Counter(node.op_type for node in onnx.load(exported.path_of(file)).graph.node)
        assert operators["SkipLayerNormalization"] > 0 and operators["BiasGelu"] > 0, operators


@pytest.mark.parametrize("file", ["model.onnx", "model.int8.onnx"])
def test_onnx_export_multiplies_only_the_positions_an_input_has(
    exported: bentoml.Model, file: str, tmp_path: Path
) -> None:
    """ONNX Runtime's own profile of a 5-token forward: every product with the position
    embeddings takes the 2 x 5 rows the input can use, none all 2 x position_buckets."""
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = onnxruntime.InferenceSession(
        exported.path_of(file), options, providers=["CPUExecutionProvider"]
    )
    session.run(None, {node.name: np.full((1, 5), 5, np.int64) for node in session.get_inputs()})
    events = json.loads(Path(session.end_profiling()).read_text())
    config = json.loads(Path(exported.path_of("config.json")).read_text())
    head_size = config["hidden_size"] // config["num_attention_heads"]
    right_sides = Counter(
        tuple(next(iter(shape.values())))
        for event in events
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
        if event["args"]["op_name"] in ("MatMul", "FusedMatMul")
        for shape in event["args"]["input_type_shape"][1:2]
    )
    heads = config["num_attention_heads"]
    position_products = 2 * config["num_hidden_layers"]
    assert right_sides[(heads, 10, head_size)] == position_products, right_sides
    assert not any(2 * config["position_buckets"] in shape for shape in right_sides), right_sides
