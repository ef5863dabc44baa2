"""Compare two models' moderation decisions on the same texts before a rollout: `make compare`.

`python -m bench.compare --baseline <ref> --candidate <ref> [--texts <file.jsonl>]` loads both
models in this process through the service's own code (service/moderation.py `CategoryScorer`) and
decides with their catalog thresholds (`ModelSpec.flags`, the API's rule), so a decision here is
the decision the service would answer. A <ref> is either

- a catalog model name or alias (`profanity-check`): the catalog in --catalog, MODERATION_CATALOG
  or service/catalog.yaml, the model from the local BentoML model store; or
- a Bento tag, optionally with a model name (`moderation:1a2b3c`,
  `moderation:1a2b3c@text-moderation`): the catalog the Bento was built with and its default
  model (or the one named).

Texts are JSON Lines, one object per line with a `text` string; an optional `kind` (clean,
abusive, borderline, or any label of yours) adds flag rates per kind; other fields are ignored.
Without --texts, bench/compare_texts.jsonl (written for
this project: clean, abusive and borderline texts in several languages and lengths).

Writes <output>/report.json, report.md and score_distributions.png (default build/compare). With
--min-agreement, exits 1 when the overall agreement (on `flagged`, any category) or the agreement
in any category both models score is below it: a gate for a release pipeline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from service.catalog import Catalog, ModelSpec, load_catalog
from service.categories import CATEGORIES
from service.moderation import CategoryScorer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = REPO_ROOT / "bench" / "compare_texts.jsonl"
DEFAULT_OUTPUT = REPO_ROOT / "build" / "compare"
BATCH_SIZE = 32
BENTO_CATALOG = Path("src") / "service" / "catalog.yaml"


class CompareError(ValueError):
    """A reference, text file or option that cannot work; the message says what to fix."""


@dataclass(frozen=True)
class Loaded:
    """One side of the comparison: where it came from and the loaded scorer."""

    ref: str
    spec: ModelSpec
    model: bentoml.Model
    bento: str | None


def _catalog_model(catalog: Catalog, name: str | None, where: str) -> ModelSpec:
    spec = catalog.find(name)
    if spec is None:
        known = sorted(n for s in catalog.models for n in (s.name, *s.aliases))
        raise CompareError(f"{where} has no model {name!r} (it has {', '.join(known)})")
    return spec


def resolve(ref: str, catalog_file: Path | None) -> tuple[ModelSpec, bentoml.Model, str | None]:
    """The catalog entry and stored model a reference names (see the module docstring)."""
    from bentoml._internal.models import ModelStore
    from bentoml.exceptions import NotFound

    if ":" not in ref:
        spec = _catalog_model(load_catalog(catalog_file), ref, "the catalog")
        try:
            return spec, bentoml.models.get(spec.tag), None
        except NotFound:
            raise CompareError(
                f"model {spec.tag} ({ref}) is not in the model store: `make import-model` or "
                "`python -m tools.store ensure-default` first"
            ) from None
    bento_ref, _, model_name = ref.partition("@")
    try:
        bento = bentoml.bentos.get(bento_ref)
    except NotFound:
        raise CompareError(
            f"no Bento {bento_ref} in the local Bento store (`make bento`)"
        ) from None
    bento_path = Path(bento.path)
    spec = _catalog_model(
        load_catalog(bento_path / BENTO_CATALOG), model_name or None, f"Bento {bento.tag}"
    )
    stores = [ModelStore(bento_path / "models")] if (bento_path / "models").is_dir() else []
    for store in stores:
        try:
            return spec, store.get(spec.tag), str(bento.tag)
        except NotFound:
            pass
    try:
        return spec, bentoml.models.get(spec.tag), str(bento.tag)
    except NotFound:
        raise CompareError(f"Bento {bento.tag} needs model {spec.tag}, not stored here") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every line's object, each with a `text` string; errors name the line."""
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CompareError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CompareError(f'{path}:{number}: expected an object with a "text" string')
            records.append(record)
    if not records:
        raise CompareError(f"{path}: no texts")
    return records


def by_kind(
    records: Sequence[dict[str, Any]], base_any: np.ndarray, cand_any: np.ndarray
) -> dict[str, Any]:
    """Flag rates per `kind` of text, where the file labels them (clean, abusive, ...): a clean
    text flagged is a false positive, an abusive one missed a false negative."""
    kinds = [record.get("kind") for record in records]
    result = {}
    for kind in sorted({k for k in kinds if isinstance(k, str)}):
        rows = np.array([k == kind for k in kinds])
        result[kind] = {
            "texts": int(rows.sum()),
            "agreement": float(np.mean(base_any[rows] == cand_any[rows])),
            "baseline_flag_rate": float(np.mean(base_any[rows])),
            "candidate_flag_rate": float(np.mean(cand_any[rows])),
        }
    return result


def score_all(loaded: Loaded, texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """Scores (texts x CATEGORIES) and texts per second; model loading and one warm-up batch are
    left out of the timing."""
    scorer = CategoryScorer(loaded.spec, loaded.model)
    scorer.score(list(texts[:BATCH_SIZE]))
    started = time.perf_counter()
    rows = category_matrix(scorer, texts, BATCH_SIZE)
    return rows, len(texts) / (time.perf_counter() - started)


def category_matrix(scorer: CategoryScorer, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Every category's score per text (texts x CATEGORIES), scored `batch_size` at a time."""
    rows = [
        [scores[category] for category in CATEGORIES]
        for start in range(0, len(texts), batch_size)
        for scores in scorer.score(list(texts[start : start + batch_size]))
    ]
    return np.array(rows, dtype=float)


def decisions(spec: ModelSpec, scores: np.ndarray) -> np.ndarray:
    """Flagged per text and category (texts x CATEGORIES), by the service's rule."""
    return np.array(
        [
            [spec.flags(dict(zip(CATEGORIES, row, strict=True)))[c] for c in CATEGORIES]
            for row in scores
        ],
        dtype=bool,
    )


def build_report(
    baseline: Loaded,
    candidate: Loaded,
    base_scores: np.ndarray,
    cand_scores: np.ndarray,
    speeds: tuple[float, float],
    records: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    base_flags, cand_flags = (
        decisions(baseline.spec, base_scores),
        decisions(candidate.spec, cand_scores),
    )
    categories: dict[str, Any] = {}
    for index, category in enumerate(CATEGORIES):
        covered = {
            "baseline": category in baseline.spec.covered_categories,
            "candidate": category in candidate.spec.covered_categories,
        }
        if not any(covered.values()):
            continue
        difference = cand_scores[:, index] - base_scores[:, index]
        largest = int(np.argmax(np.abs(difference)))
        categories[category] = {
            "scored_by": [side for side, yes in covered.items() if yes],
            "agreement": float(np.mean(base_flags[:, index] == cand_flags[:, index])),
            "baseline_flag_rate": float(np.mean(base_flags[:, index])),
            "candidate_flag_rate": float(np.mean(cand_flags[:, index])),
            "baseline_threshold": baseline.spec.threshold(category)
            if covered["baseline"]
            else None,
            "candidate_threshold": candidate.spec.threshold(category)
            if covered["candidate"]
            else None,
            "mean_score_difference": float(np.mean(difference)),
            "mean_abs_score_difference": float(np.mean(np.abs(difference))),
            "max_abs_score_difference": float(abs(difference[largest])),
            "max_abs_score_difference_text": largest,
        }
    base_any, cand_any = base_flags.any(axis=1), cand_flags.any(axis=1)
    return {
        "texts": len(base_scores),
        "baseline": _side(baseline, base_any, speeds[0]),
        "candidate": _side(candidate, cand_any, speeds[1]),
        "overall": {
            "agreement": float(np.mean(base_any == cand_any)),
            "all_categories_agree": float(np.mean((base_flags == cand_flags).all(axis=1))),
            "baseline_flag_rate": float(np.mean(base_any)),
            "candidate_flag_rate": float(np.mean(cand_any)),
        },
        "categories": categories,
        "kinds": by_kind(records, base_any, cand_any),
    }


def _side(loaded: Loaded, flagged: np.ndarray, texts_per_s: float) -> dict[str, Any]:
    return {
        "ref": loaded.ref,
        "model": loaded.spec.name,
        "tag": str(loaded.model.tag),
        "bento": loaded.bento,
        "backend": loaded.spec.backend.value,
        "texts_per_s": texts_per_s,
        "flag_rate": float(np.mean(flagged)),
    }


def gate(report: dict[str, Any], min_agreement: float) -> list[str]:
    """What falls below `min_agreement`: overall, and each category both models score."""
    failures = []
    if report["overall"]["agreement"] < min_agreement:
        failures.append(f"overall agreement {report['overall']['agreement']:.3f}")
    for category, row in report["categories"].items():
        if len(row["scored_by"]) == 2 and row["agreement"] < min_agreement:
            failures.append(f"{category} agreement {row['agreement']:.3f}")
    return failures


def plot_distributions(
    report: dict[str, Any], base_scores: np.ndarray, cand_scores: np.ndarray, path: Path
) -> None:
    """One histogram per compared category, both models overlaid, thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["categories"])
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    bins = np.linspace(0.0, 1.0, 26)
    sides = (("baseline", base_scores, "tab:blue"), ("candidate", cand_scores, "tab:orange"))
    for axis, category in zip(axes.flat, names, strict=False):
        index = CATEGORIES.index(category)
        row = report["categories"][category]
        for side, scores, colour in sides:
            label = f"{side}: {report[side]['model']}"
            axis.hist(scores[:, index], bins=bins, alpha=0.55, color=colour, label=label)
            if row[f"{side}_threshold"] is not None:
                axis.axvline(row[f"{side}_threshold"], color=colour, linestyle="--", linewidth=1)
        axis.set_yscale("log")
        axis.set_title(f"{category} (agreement {row['agreement']:.1%})")
        axis.set_xlabel("score")
        axis.set_ylabel("texts")
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(report: dict[str, Any]) -> str:
    base, cand, overall = report["baseline"], report["candidate"], report["overall"]
    lines = [
        f"# {base['model']} vs {cand['model']} on {report['texts']} texts",
        "",
        f"- baseline: `{base['ref']}` ({base['tag']}), {base['texts_per_s']:.0f} texts/s",
        f"- candidate: `{cand['ref']}` ({cand['tag']}), {cand['texts_per_s']:.0f} texts/s",
        f"- texts: `{report['texts_file']}` (sha256 {report['texts_sha256'][:12]})",
        f"- flagged (any category): agreement {overall['agreement']:.1%}, baseline "
        f"{overall['baseline_flag_rate']:.1%}, candidate {overall['candidate_flag_rate']:.1%}",
        f"- every category decision the same: {overall['all_categories_agree']:.1%} of texts",
        "",
        "| category | scored by | agreement | baseline flags | candidate flags "
        "| mean score diff | largest diff (text #) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for category, row in report["categories"].items():
        lines.append(
            f"| {category} | {' + '.join(row['scored_by'])} | {row['agreement']:.1%} "
            f"| {row['baseline_flag_rate']:.1%} | {row['candidate_flag_rate']:.1%} "
            f"| {row['mean_score_difference']:+.3f} | {row['max_abs_score_difference']:.3f} "
            f"(#{row['max_abs_score_difference_text']}) |"
        )
    if report["kinds"]:
        lines += [
            "",
            "| kind of text | texts | agreement | baseline flags | candidate flags |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind, row in report["kinds"].items():
            lines.append(
                f"| {kind} | {row['texts']} | {row['agreement']:.1%} "
                f"| {row['baseline_flag_rate']:.1%} | {row['candidate_flag_rate']:.1%} |"
            )
    if report.get("min_agreement") is not None:
        verdict = "passed" if report["passed"] else "FAILED: " + "; ".join(report["failures"])
        lines += ["", f"Gate `--min-agreement {report['min_agreement']}`: {verdict}."]
    lines += [
        "",
        "Score distributions: `score_distributions.png` (log scale, dashed: thresholds).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--baseline", required=True, help="catalog model or Bento tag[@model]")
    parser.add_argument("--candidate", required=True, help="catalog model or Bento tag[@model]")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="JSON Lines file")
    parser.add_argument(
        "--catalog", type=Path, help="catalog for model names (default: the service's)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report directory")
    parser.add_argument(
        "--min-agreement",
        type=float,
        help="exit 1 below this agreement (0-1), overall or per category",
    )
    args = parser.parse_args(argv)
    try:
        if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
            raise CompareError(f"--min-agreement must be between 0 and 1, got {args.min_agreement}")
        records = read_records(args.texts)
        texts = [record["text"] for record in records]
        sides = [
            Loaded(ref, *resolve(ref, args.catalog)) for ref in (args.baseline, args.candidate)
        ]
    except (CompareError, ValueError, OSError) as error:
        print(f"make compare: {error}", file=sys.stderr)
        return 2
    (base_scores, base_speed), (cand_scores, cand_speed) = (score_all(s, texts) for s in sides)
    report = build_report(*sides, base_scores, cand_scores, (base_speed, cand_speed), records)
    report["texts_file"] = str(args.texts)
    report["texts_sha256"] = hashlib.sha256(args.texts.read_bytes()).hexdigest()
    report["min_agreement"] = args.min_agreement
    report["failures"] = gate(report, args.min_agreement) if args.min_agreement is not None else []
    report["passed"] = not report["failures"]
    args.output.mkdir(parents=True, exist_ok=True)
    plot_distributions(report, base_scores, cand_scores, args.output / "score_distributions.png")
    (args.output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = markdown(report)
    (args.output / "report.md").write_text(summary)
    print(summary)
    print(f"Wrote {args.output}/report.json, report.md and score_distributions.png")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
