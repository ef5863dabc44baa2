"""`make compare` (bench/compare.py): the offline default against a tiny DeBERTa built in the
session, each report number checked against scores computed here without the kit's code
(alt-profanity-check's own `predict_prob`, the transformers model's softmax) on the texts as the
service scores them: normalised by service/normalize.py (both catalog models normalise; tested on
its own in tests/service/test_normalize.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pytest
import torch
import yaml
from profanity_check import predict_prob
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bench.compare import DEFAULT_TEXTS, main, read_records
from service.normalize import normalize
from tests.fixtures.catalog import StoredModels
from tests.fixtures.servers import REPO_ROOT

TEXTS = [
    "thank you for your help",
    "you are a fucking idiot",
    "the quick brown fox jumps over the lazy dog",
    "shut up you stupid piece of shit",
    "I will hurt you",
    "hello world, this is a friendly message about cats and dogs",
    "what a lovely day",
    "go to hell, asshole",
    "numbers 0 1 2 3 4 5",
    "everyone hates you, loser",
    "Gracias por todo",
    "",
]
THRESHOLD = 0.5  # harassment: profanity-check's catalog threshold and tiny-toxic's default


def _toxic_scores(tag: str, texts: list[str]) -> np.ndarray:
    path = bentoml.models.get(tag).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        probabilities = model(**encoded).logits.softmax(dim=-1).numpy()
    return probabilities[:, model.config.label2id["toxic"]]


def _compare(tmp_path: Path, catalog: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t, "kind": "x"}) + "\n" for t in TEXTS))
    output = tmp_path / "out"
    code = main(
        [
            *("--baseline", "profanity-check", "--candidate", "tiny-toxic"),
            *("--texts", str(texts), "--catalog", str(catalog), "--output", str(output)),
            *extra,
        ]
    )
    return code, json.loads((output / "report.json").read_text())


@pytest.fixture(scope="module")
def expected(stored_models: StoredModels) -> dict[str, Any]:
    scored = [normalize(text) for text in TEXTS]
    assert scored != TEXTS  # "numbers 0 1 2 3 4 5": spaced characters are joined
    baseline = predict_prob(scored)
    candidate = _toxic_scores(stored_models.toxic, scored)
    base_flags, cand_flags = baseline >= THRESHOLD, candidate >= THRESHOLD
    difference = candidate - baseline
    return {
        "agreement": float(np.mean(base_flags == cand_flags)),
        "baseline_flag_rate": float(np.mean(base_flags)),
        "candidate_flag_rate": float(np.mean(cand_flags)),
        "mean_score_difference": float(np.mean(difference)),
        "max_abs_score_difference": float(np.max(np.abs(difference))),
        "max_abs_score_difference_text": int(np.argmax(np.abs(difference))),
    }


def test_report_numbers_match_an_independent_computation(
    tmp_path: Path, catalog_file: Path, expected: dict[str, Any]
) -> None:
    # Otherwise the comparison below could not tell agreement from a constant.
    assert 0.0 < expected["agreement"] < 1.0
    code, report = _compare(tmp_path, catalog_file)
    assert code == 0
    assert report["texts"] == len(TEXTS)
    assert set(report["categories"]) == {"harassment"}  # the one category either model scores
    harassment = report["categories"]["harassment"]
    for key, value in expected.items():
        assert harassment[key] == pytest.approx(value, abs=1e-5), key
    # Both models score harassment only, so "flagged at all" is the harassment decision.
    assert report["overall"]["agreement"] == pytest.approx(expected["agreement"])
    assert report["baseline"]["flag_rate"] == pytest.approx(expected["baseline_flag_rate"])
    assert report["candidate"]["flag_rate"] == pytest.approx(expected["candidate_flag_rate"])
    # Every text is of kind "x": its row is the overall decision again.
    assert report["kinds"] == {
        "x": {
            "texts": len(TEXTS),
            "agreement": pytest.approx(expected["agreement"]),
            "baseline_flag_rate": pytest.approx(expected["baseline_flag_rate"]),
            "candidate_flag_rate": pytest.approx(expected["candidate_flag_rate"]),
        }
    }
    assert report["baseline"]["texts_per_s"] > 0 and report["candidate"]["texts_per_s"] > 0
    assert (tmp_path / "out" / "score_distributions.png").read_bytes()[:4] == b"\x89PNG"
    assert "| harassment |" in (tmp_path / "out" / "report.md").read_text()


def test_min_agreement_gates_the_exit_code(
    tmp_path: Path, catalog_file: Path, expected: dict[str, Any]
) -> None:
    agreement = expected["agreement"]
    passing, report = _compare(tmp_path / "pass", catalog_file, "--min-agreement", str(agreement))
    assert passing == 0 and report["passed"]
    failing, report = _compare(
        tmp_path / "fail", catalog_file, "--min-agreement", str(agreement + 0.01)
    )
    assert failing == 1 and not report["passed"]
    assert report["failures"][0].startswith("overall agreement")


def test_a_category_only_the_candidate_scores_is_reported_but_not_gated(
    tmp_path: Path, catalog_file: Path
) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    code = main(
        [
            *("--baseline", "profanity-check", "--candidate", "tiny-koala"),
            *("--texts", str(texts), "--catalog", str(catalog_file)),
            *("--output", str(tmp_path / "out"), "--min-agreement", "0"),
        ]
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 0
    assert report["categories"]["hate"]["scored_by"] == ["candidate"]
    assert report["categories"]["hate"]["baseline_flag_rate"] == 0.0
    assert report["categories"]["harassment"]["scored_by"] == ["baseline", "candidate"]


def test_the_default_text_set_is_varied() -> None:
    records = [json.loads(line) for line in DEFAULT_TEXTS.read_text().splitlines()]
    assert len(read_records(DEFAULT_TEXTS)) == len(records) >= 250
    assert {r["kind"] for r in records} == {"clean", "abusive", "borderline"}
    assert len({r["lang"] for r in records}) >= 10
    lengths = [len(r["text"]) for r in records]
    assert min(lengths) < 10 and max(lengths) > 1000


def test_a_bad_text_file_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    code = main(["--baseline", "a", "--candidate", "b", "--texts", str(texts)])
    assert code == 2
    assert f"{texts}:2" in capsys.readouterr().err


def test_a_bento_is_compared_with_the_catalog_and_model_it_was_built_with(
    tmp_path: Path, catalog_file: Path, stored_models: StoredModels
) -> None:
    """`moderation:<version>` means that Bento's packed catalog and its default model."""
    catalog = tmp_path / "bento-catalog.yaml"
    document = yaml.safe_load(catalog_file.read_text())
    document["models"] = [m for m in document["models"] if m["name"] == "tiny-toxic"]
    document["default_model"] = "tiny-toxic"
    catalog.write_text(yaml.safe_dump(document))
    build = subprocess.run(
        [sys.executable, "-m", "tools.build_bento", "--catalog", str(catalog)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    bento = build.stdout.strip().splitlines()[-1]
    _, by_name = _compare(tmp_path / "by-name", catalog_file)
    _, by_bento = _compare(tmp_path / "by-bento", catalog_file, "--candidate", bento)
    assert by_bento["candidate"]["bento"] == bento
    assert by_bento["candidate"]["tag"] == stored_models.toxic
    assert by_bento["categories"] == by_name["categories"]
