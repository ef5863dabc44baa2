"""Is a faster precision safe for a model? `make validate-precision MODEL=<name> [PRECISION=...]`.

Scores a fixed text set (bench/texts.py's mix, its own seed) with the catalog model in fp32 on the
CPU and in the chosen setting (`int8`, `bf16`, `gpu:fp16`, ...; default: the one the service would
run on this machine), then reports the share of texts whose top category is the same, and the
largest difference of any category score. A setting may join a model's `validated` list only where
agreement is at least MIN_AGREEMENT and the largest difference at most MAX_SCORE_DIFFERENCE; the
exit status says whether it may (0 yes, 1 no). The catalog comes
from MODERATION_CATALOG as for the service; `--backend onnx --tag <export>` compares an ONNX
export (tools/onnx_export.py) with the torch model it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bentoml
import numpy as np
from pydantic import BaseModel

from bench.compare import category_matrix
from bench.models import torch_fp32
from bench.texts import moderation_texts
from service.catalog import FP32_CPU, Backend, ModelSpec, Setting, load_catalog
from service.categories import CATEGORIES
from service.hardware import SPEED_ORDER, Choice, choice_on_this_node
from service.moderation import CategoryScorer

MIN_AGREEMENT = 0.99
MAX_SCORE_DIFFERENCE = 0.05
TEXT_COUNT = 300
TEXT_SEED = 7
BATCH = 1  # no padding: the comparison sees precision alone
OUT_DIR = Path("build/precision")


class Validation(BaseModel):
    model: str
    reference: str
    candidate: str
    texts: int
    top_category_agreement: float
    max_score_difference: float
    mean_score_difference: float
    reference_cpu_seconds_per_text: float
    candidate_cpu_seconds_per_text: float
    passed: bool


def _scores(spec: ModelSpec, setting: Setting, texts: list[str]) -> tuple[np.ndarray, float]:
    """(texts x categories) scores, and CPU seconds per text (wall time is at the mercy of
    other work on the machine; CPU time hardly), in batches of BATCH."""
    choice = Choice(setting, "asked for by make validate-precision")
    scorer = CategoryScorer(spec, bentoml.models.get(spec.tag), choice)
    scorer.score(texts[:1])  # warm-up: first calls allocate
    started = time.process_time()
    rows = category_matrix(scorer, texts, BATCH)
    return rows, (time.process_time() - started) / len(texts)


def validate(
    reference: ModelSpec, candidate: ModelSpec, setting: Setting, texts: list[str]
) -> Validation:
    """`candidate` in `setting` against `reference` in fp32 on the CPU."""
    expected, reference_cpu = _scores(reference, FP32_CPU, texts)
    observed, candidate_cpu = _scores(candidate, setting, texts)
    covered = [i for i, c in enumerate(CATEGORIES) if c in reference.covered_categories]
    agreement = float(
        np.mean(expected[:, covered].argmax(axis=1) == observed[:, covered].argmax(axis=1))
    )
    difference = np.abs(expected - observed)
    return Validation(
        model=reference.name,
        reference=f"{reference.backend.value} {FP32_CPU} {reference.tag}",
        candidate=f"{candidate.backend.value} {setting} {candidate.tag}",
        texts=len(texts),
        top_category_agreement=round(agreement, 4),
        max_score_difference=round(float(difference.max()), 5),
        mean_score_difference=round(float(difference.mean()), 6),
        reference_cpu_seconds_per_text=round(reference_cpu, 4),
        candidate_cpu_seconds_per_text=round(candidate_cpu, 4),
        passed=agreement >= MIN_AGREEMENT and float(difference.max()) <= MAX_SCORE_DIFFERENCE,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__)
    parser.add_argument("--model", required=True, help="catalog model name")
    parser.add_argument("--precision", choices=[str(setting) for setting in SPEED_ORDER])
    parser.add_argument("--backend", choices=[b.value for b in Backend])
    parser.add_argument("--tag", help="stored model to run as the candidate (an ONNX export)")
    parser.add_argument("--texts", type=int, default=TEXT_COUNT)
    args = parser.parse_args(argv)
    spec = load_catalog().find(args.model)
    if spec is None:
        print(f"model {args.model!r} is not in the catalog", file=sys.stderr)
        return 2
    changes: dict[str, object] = {}
    if args.backend:
        changes["backend"] = Backend(args.backend)
    if args.tag:
        changes["tag"] = args.tag
    candidate = ModelSpec.model_validate({**spec.model_dump(), **changes})
    setting = (
        Setting.model_validate(args.precision)
        if args.precision
        else choice_on_this_node(candidate).setting
    )
    # The reference is the torch model in fp32: for an ONNX export, the model it came from.
    reference = torch_fp32(spec)
    texts = moderation_texts(args.texts, seed=TEXT_SEED)
    result = validate(reference, candidate, setting, texts)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{args.model}-{candidate.backend.value}-{str(setting).replace(':', '-')}.json"
    out.write_text(result.model_dump_json(indent=2) + "\n")
    print(json.dumps(result.model_dump(), indent=2))
    verdict = "may join `validated`" if result.passed else "must not join `validated`"
    print(
        f"{candidate.backend.value} {setting} {verdict} for {args.model}: "
        f"top-category agreement {result.top_category_agreement:.2%} (needs >= "
        f"{MIN_AGREEMENT:.0%}), largest score difference {result.max_score_difference:.4f} "
        f"(needs <= {MAX_SCORE_DIFFERENCE}); wrote {out}"
    )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
