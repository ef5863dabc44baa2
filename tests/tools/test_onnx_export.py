"""`make export-onnx` (tools/onnx_export.py): the ONNX Runtime export of a stored model scores like
the torch model it came from in fp32, its layers run ONNX Runtime's fused operators, and its int8
copy is really another model."""

from collections import Counter

import bentoml
import onnx
import pytest

from service.moderation import CategoryScorer
from tests.fixtures.catalog import StoredModels, koala_spec, running
from tools.onnx_export import export

TEXTS = ["hello there", "I will hurt you", "", "x\x00\x1b y " * 40]


def test_onnx_export_is_fused_scores_like_torch_in_fp32_and_its_int8_copy_differs(
    stored_models: StoredModels,
) -> None:
    exported = export(stored_models.koala, name="tiny-koala-onnx-test")
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
