"""Three contestants, one run, the same texts: `make bench` (or `python -m bench.run`).

- `limit`: the kit's own scorer in this process (`service.moderation.CategoryScorer`), fed the
  same texts sorted by length (little padding) in batches of N, on as many lanes at once as the
  service has, in the setting the service runs: what the hardware allows; its best N is the
  limit. Before the levels it scores each text alone on one lane: one in-process forward.
- `service`: the kit over HTTP as deployed (`bentoml serve service.app:Moderation`, API key on,
  request log on), N concurrent clients, one text per request. Before the levels, `idle`: each
  text alone, in turn, one in-process forward and then one request to the idle service; the idle
  gap is the median over the texts of the request's time less the same text's forward (paired,
  so neither the texts' lengths nor the machine's drift during the run weigh in).
- `baseline`: the seed MVP (bench/mvp_baseline.py): one process, the model called once per
  request, fp32, N concurrent clients.

The model is a DeBERTa-v3-base-shaped classifier with random weights (bench/models.py, built
once into the BentoML store), by default its ONNX export (`--backend onnx`: fused, fp32 and int8;
int8 passed `make validate-precision` against the torch model in fp32, docs/performance.md). The
texts are bench/texts.py's moderation mix; every contestant scores each of them once per level
(`--texts`, whole passes, so no contestant gets only the short ones). Every `MODERATION_*`
setting in the environment reaches the service (and MODERATION_INFERENCE_THREADS all three);
the harness sets the API key and, unless MODERATION_CATALOG names one, the catalog.

`--precision int8,fp32` runs limit and service in each setting side by side (the first fills
`limit` and `service`; every one is in `settings`, with its CPU seconds per text); the default is
the setting the service would choose on this machine. The first setting is held to the targets
(`targets`; the exit status is 1 when one is missed): at the highest level the service completes
>= 0.9x the limit at its best and >= 4x the baseline's texts (6x on a CPU with AMX) with at most
half its p99, and one idle request takes at most 15 ms more than one in-process forward (the idle
gap).
`machine` records the CPU model and its features (the /proc/cpuinfo flags that decide a setting).

Writes build/bench/results.json (`{"machine", "command", "model", "limit", "service",
"baseline", "settings", "targets"}`), build/bench/throughput.png and p99.png,
build/bench/results.md, and (not with --quick) the dated copy bench/results/<date>.md/.json.
`--quick` runs the same harness on a tiny model of the same builder in about a minute: CI runs
it to prove the harness works.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import os
import platform
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import metadata
from pathlib import Path

import bentoml
import httpx
import numpy as np
import yaml
from pydantic import BaseModel

from bench.load import MODERATIONS_PATH, LevelResult, run_level
from bench.models import bench_spec, ensure_bench_model, torch_fp32
from bench.servers import REPO_ROOT, free_port, ready, start_process, start_server
from bench.texts import SEED, moderation_texts
from service.auth import hash_key
from service.backends import inference_layout
from service.catalog import (
    CATALOG_ENV,
    FP32_CPU,
    Backend,
    ModelSpec,
    Setting,
    load_catalog,
)
from service.hardware import Choice, choice_on_this_node, read_cpu_flags
from service.moderation import CategoryScorer

OUT_DIR = REPO_ROOT / "build" / "bench"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
# A fp32 baseline at 32 clients answers in seconds: never count slowness as an error.
REQUEST_TIMEOUT_S = 300.0
LEVEL_TIMEOUT_S = 3600.0  # a level ends when every text is answered; this only bounds a hang
# Mean length 281 characters against 253 for 512 texts of the mix: a little heavier, not lighter.
TEXT_COUNT = 192
QUICK_TEXT_COUNT = 24
WARM_UP_REQUESTS = 3
CONTESTANTS = ("limit", "service", "baseline")


class Entry(BaseModel):
    """One concurrency (batch size for `limit`) of one contestant."""

    concurrency: int
    texts_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int


class Idle(BaseModel):
    """Each of `texts` alone, in turn: one in-process forward, then one request to the idle
    service; `gap_p50_ms` is the median over the texts of the request less the forward."""

    texts: int
    forward_p50_ms: float
    service_p50_ms: float
    gap_p50_ms: float


class SettingRun(BaseModel):
    """Limit and service in one setting (`service_runs`: what the service chose for it here)."""

    setting: str
    service_runs: str
    forward_p50_ms: float
    limit: list[Entry]
    service: list[Entry]
    idle: Idle
    limit_cpu_seconds_per_text: dict[str, float]


class Target(BaseModel):
    """One figure of the first setting against its bound."""

    name: str
    measured: float
    bound: str
    met: bool


class Results(BaseModel):
    machine: dict[str, object]
    command: str
    model: str
    limit: list[Entry]
    service: list[Entry]
    baseline: list[Entry]
    settings: list[SettingRun]
    targets: list[Target]


def machine_facts() -> dict[str, object]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cpu_count": os.cpu_count() or 0,
        "cpu_model": cpu_model,
        # What decides a setting (service/hardware.py): SIMD, VNNI, bf16 and AMX flags.
        "cpu_features": sorted(
            flag for flag in read_cpu_flags() if flag.startswith(("avx", "amx", "fma", "f16c"))
        ),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "bentoml": metadata.version("bentoml"),
        # Other work on the machine competes with the contestants and the load generator.
        "load_average_at_start": os.getloadavg(),
    }


def _entry(
    concurrency: int, texts: int, elapsed: float, latencies_s: list[float], errors: int
) -> Entry:
    p50, p95, p99 = (
        np.percentile(np.array(latencies_s) * 1000, [50, 95, 99]) if latencies_s else [0.0] * 3
    )
    return Entry(
        concurrency=concurrency,
        texts_per_s=round(texts / elapsed, 2) if elapsed else 0.0,
        p50_ms=round(float(p50), 1),
        p95_ms=round(float(p95), 1),
        p99_ms=round(float(p99), 1),
        errors=errors,
    )


def _printed(name: str, entry: Entry) -> Entry:
    print(
        f"  {name:<8} {entry.concurrency:>3}: {entry.texts_per_s:>8.2f} texts/s, "
        f"p50 {entry.p50_ms:>8.1f} ms, p99 {entry.p99_ms:>8.1f} ms, errors {entry.errors}",
        flush=True,
    )
    return entry


def reference_scorer(spec: ModelSpec, setting: Setting) -> CategoryScorer:
    """The kit's own scorer in this process, in `setting`: the limit, and the idle reference."""
    scorer = CategoryScorer(
        spec, bentoml.models.get(spec.tag), Choice(setting, "asked for by bench.run")
    )
    scorer.score(moderation_texts(2))  # warm-up: first calls allocate
    return scorer


def bench_limit(
    scorer: CategoryScorer, texts: Sequence[str], levels: list[int]
) -> tuple[float, list[Entry], dict[str, float]]:
    """One in-process forward's median time (each text alone, one lane), then each level: the
    texts sorted by length and cut into batches of N (as the batcher groups by length, so
    padding is slight), in shuffled order, scored in `setting` on as many lanes at once as the
    service has (service/backends.py inference_layout); each text of a batch waits the whole
    batch, so a batch's time is its texts' latency. Also the CPU seconds per text at each N:
    unlike wall time, other work on the machine barely changes it, so it is the figure capacity
    planning scales from."""
    texts = sorted(texts, key=len)
    alone = []
    for text in texts:
        sent = time.perf_counter()
        scorer.score([text])
        alone.append(time.perf_counter() - sent)
    forward_p50_ms = round(float(np.median(alone)) * 1000, 1)
    print(f"  one in-process forward: p50 {forward_p50_ms} ms", flush=True)
    lanes = inference_layout().lanes
    results, cpu_per_text = [], {}
    for size in levels:
        batches = [texts[start : start + size] for start in range(0, len(texts), size)]
        random.Random(SEED).shuffle(batches)
        cpu_started = time.process_time()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            batch_seconds = list(pool.map(partial(_timed, scorer), batches))
        elapsed = time.perf_counter() - started
        latencies = [
            seconds for batch, seconds in zip(batches, batch_seconds, strict=True) for _ in batch
        ]
        cpu_per_text[str(size)] = round((time.process_time() - cpu_started) / len(texts), 4)
        results.append(_printed("limit", _entry(size, len(texts), elapsed, latencies, 0)))
    return forward_p50_ms, results, cpu_per_text


def _timed(scorer: CategoryScorer, batch: list[str]) -> float:
    sent = time.perf_counter()
    scorer.score(batch)
    return time.perf_counter() - sent


def sweep(
    name: str, base_url: str, texts: Sequence[str], levels: list[int], headers: dict[str, str]
) -> tuple[list[Entry], list[LevelResult]]:
    """A few unrecorded requests one at a time (a warm-up at full concurrency would leave a slow
    model a backlog that the first levels then wait behind), then each level in turn: every text
    once, one per request."""
    options = {"texts": texts, "headers": headers, "request_timeout_s": REQUEST_TIMEOUT_S}
    asyncio.run(run_level(base_url, 1, REQUEST_TIMEOUT_S, max_requests=WARM_UP_REQUESTS, **options))
    entries, raw = [], []
    for concurrency in levels:
        level = asyncio.run(
            run_level(base_url, concurrency, LEVEL_TIMEOUT_S, max_requests=len(texts), **options)
        )
        raw.append(level)
        latency = level.latency_ms
        entries.append(
            _printed(
                name,
                Entry(
                    concurrency=concurrency,
                    texts_per_s=level.throughput_rps,
                    p50_ms=latency.p50,
                    p95_ms=latency.p95,
                    p99_ms=latency.p99,
                    errors=level.errors,
                ),
            )
        )
    return entries, raw


def _server_env(catalog: Path, keep_moderation: bool) -> dict[str, str]:
    """This environment with PYTHONPATH and the catalog set; other MODERATION_* settings pass
    through to the service as they are (the baseline takes only the thread setting)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if keep_moderation
        or not key.startswith("MODERATION_")
        or key == "MODERATION_INFERENCE_THREADS"
    }
    env.update(PYTHONPATH=str(REPO_ROOT), **{CATALOG_ENV: str(catalog)})
    return env


def bench_idle(
    scorer: CategoryScorer, base_url: str, texts: Sequence[str], headers: dict[str, str]
) -> Idle:
    """Each text alone, in turn: one forward of `scorer` here, then one request to the idle
    service at `base_url` (a request's time includes this client's, as in the levels)."""
    forwards, requests = [], []
    with httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        client.post(MODERATIONS_PATH, json={"input": texts[0]}).raise_for_status()  # connect
        for text in texts:
            forwards.append(_timed(scorer, [text]))
            sent = time.perf_counter()
            response = client.post(MODERATIONS_PATH, json={"input": text})
            requests.append(time.perf_counter() - sent)
            response.raise_for_status()
    forward, request = np.array(forwards) * 1000, np.array(requests) * 1000
    idle = Idle(
        texts=len(texts),
        forward_p50_ms=round(float(np.median(forward)), 1),
        service_p50_ms=round(float(np.median(request)), 1),
        gap_p50_ms=round(float(np.median(request - forward)), 1),
    )
    print(
        f"  idle: forward p50 {idle.forward_p50_ms} ms, request p50 {idle.service_p50_ms} ms, "
        f"gap p50 {idle.gap_p50_ms} ms ({idle.texts} texts, each both ways)",
        flush=True,
    )
    return idle


def bench_service(
    catalog: Path, texts: Sequence[str], levels: list[int], work: Path, scorer: CategoryScorer
) -> tuple[list[Entry], list[LevelResult], Idle]:
    """The kit as deployed: API key on, request log on, its own batching; first its idle gap
    against `scorer`, the same setting in this process."""
    api_key = secrets.token_urlsafe(32)
    env = _server_env(catalog, keep_moderation=True)
    env.pop("MODERATION_AUTH_DISABLED", None)
    env.update(MODERATION_API_KEY_HASHES=hash_key(api_key))
    env.pop("MODERATION_API_KEY_HASHES_FILE", None)
    process, port = start_server(env, work / "service.log")
    base_url = f"http://127.0.0.1:{port}"
    print(f"service on {base_url}", flush=True)
    headers = {"Authorization": f"Bearer {api_key}"}
    with ready(process, base_url, work / "service.log"):
        idle = bench_idle(scorer, base_url, texts, headers)
        return (*sweep("service", base_url, texts, levels, headers), idle)


def bench_baseline(
    catalog: Path, texts: Sequence[str], levels: list[int], work: Path
) -> list[Entry]:
    port = free_port()
    command = [sys.executable, "-m", "bench.mvp_baseline", "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    print(f"baseline on {base_url}", flush=True)
    process = start_process(
        command, _server_env(catalog, keep_moderation=False), work / "baseline.log"
    )
    with ready(process, base_url, work / "baseline.log", probe="/livez"):
        return sweep("baseline", base_url, texts, levels, {})[0]


def write_catalog(path: Path, spec: ModelSpec) -> Path:
    document = {"default_model": spec.name, "models": [spec.model_dump(mode="json")]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def draw_plots(results: Results, out: Path) -> list[Path]:
    """Throughput and p99 against concurrency, one line per contestant."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    paths = []
    for field, label, name in (
        ("texts_per_s", "texts per second", "throughput.png"),
        ("p99_ms", "p99 latency (ms)", "p99.png"),
    ):
        figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
        for contestant in CONTESTANTS:
            entries = getattr(results, contestant)
            axes.plot(
                [e.concurrency for e in entries],
                [getattr(e, field) for e in entries],
                marker="o",
                label=contestant,
            )
        levels = [e.concurrency for e in results.service]
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.set_xlabel("concurrency (batch size for limit)")
        axes.set_ylabel(label)
        axes.set_title(f"{label} ({results.machine['date']})")
        figure.text(0.01, 0.01, results.model, fontsize=6)
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout(rect=(0, 0.03, 1, 1))
        figure.savefig(out / name)
        plt.close(figure)
        paths.append(out / name)
    return paths


def markdown(results: Results, batches: list[LevelResult]) -> str:
    """The dated table: one row per concurrency, the three contestants, then the targets."""
    facts = results.machine
    start, end = facts["load_average_at_start"], facts["load_average_at_end"]
    rows = [
        f"Measured {facts['date']} on {facts['cpu_count']} CPUs ({facts['cpu_model']}), "
        f"1/5/15-min load average {_loads(start)} at start, {_loads(end)} at end; "
        f"model {results.model}; {facts['texts']}, each once per level; "
        f"`{results.command}`.",
        "",
        "| N | limit texts/s | service texts/s | baseline texts/s | service/limit "
        "| service/baseline | p99 ms limit / service / baseline | service texts per batch "
        "| errors service / baseline |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for limit, service, baseline, raw in zip(
        results.limit, results.service, results.baseline, batches, strict=True
    ):
        batch = f"{raw.batch_sizes.mean:.1f}" if raw.batch_sizes else "n/a"
        rows.append(
            f"| {limit.concurrency} | {limit.texts_per_s:.2f} | {service.texts_per_s:.2f} "
            f"| {baseline.texts_per_s:.2f} | {_ratio(service.texts_per_s, limit.texts_per_s)} "
            f"| {_ratio(service.texts_per_s, baseline.texts_per_s)} "
            f"| {limit.p99_ms:.0f} / {service.p99_ms:.0f} / {baseline.p99_ms:.0f} | {batch} "
            f"| {service.errors} / {baseline.errors} |"
        )
    rows += [""]
    rows += [
        f"- {'met' if target.met else 'MISSED'}: {target.name} {target.measured:g} "
        f"(target {target.bound})"
        for target in results.targets
    ]
    rows += [
        "",
        "| setting (service runs) | one forward p50 ms | idle: forward / request / gap p50 ms "
        "| limit best texts/s | service best texts/s | service/limit "
        "| limit CPU s per text at each N |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in results.settings:
        limit_best = max(entry.texts_per_s for entry in run.limit)
        service_best = max(entry.texts_per_s for entry in run.service)
        cpu = ", ".join(f"{n}: {s}" for n, s in run.limit_cpu_seconds_per_text.items())
        rows.append(
            f"| {run.setting} ({run.service_runs}) | {run.forward_p50_ms} "
            f"| {run.idle.forward_p50_ms} / {run.idle.service_p50_ms} / {run.idle.gap_p50_ms} "
            f"| {limit_best:.2f} | {service_best:.2f} "
            f"| {_ratio(service_best, limit_best)} | {cpu} |"
        )
    return "\n".join(rows) + "\n"


def targets(run: SettingRun, baseline: list[Entry], cpu_flags: frozenset[str]) -> list[Target]:
    """Issue 19's bar for the first setting: near the limit, far ahead of the MVP at the highest
    level (further on a CPU with AMX, whose int8 and bf16 units the MVP's fp32 leaves idle), and
    no slower than the model itself when idle."""
    top, top_baseline = run.service[-1], baseline[-1]
    limit = max(entry.texts_per_s for entry in run.limit)
    times_mvp = 6.0 if "amx_tile" in cpu_flags else 4.0
    n = top.concurrency
    return [
        _target(f"service/limit at N={n}", top.texts_per_s / limit, ">= 0.9", 0.9),
        _target(
            f"service/baseline texts at N={n}",
            top.texts_per_s / top_baseline.texts_per_s,
            f">= {times_mvp:g} ({'AMX' if times_mvp == 6 else 'no AMX'})",
            times_mvp,
        ),
        _target(f"service/baseline p99 at N={n}", top.p99_ms / top_baseline.p99_ms, "<= 0.5"),
        _target(
            "idle request - in-process forward, same text, p50 ms", run.idle.gap_p50_ms, "<= 15"
        ),
    ]


def _target(name: str, measured: float, bound: str, at_least: float | None = None) -> Target:
    ceiling = float(bound.split()[1])
    met = measured >= at_least if at_least is not None else measured <= ceiling
    return Target(name=name, measured=round(measured, 2), bound=bound, met=met)


def _settings(text: str) -> list[Setting]:
    """`--precision int8,bf16`: settings in the catalog's notation."""
    return [Setting.model_validate(part.strip()) for part in text.split(",") if part.strip()]


def _loads(averages: object) -> str:
    return " / ".join(f"{value:.1f}" for value in averages)  # type: ignore[attr-defined]


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny model, short levels (CI)")
    parser.add_argument("--levels", help="comma-separated concurrencies (default 1,8,32)")
    parser.add_argument(
        "--texts",
        type=int,
        help=f"texts per level (default {TEXT_COUNT}; --quick {QUICK_TEXT_COUNT})",
    )
    parser.add_argument(
        "--backend",
        choices=[Backend.ONNX.value, Backend.TRANSFORMERS.value],
        default=Backend.ONNX.value,
        help="the benchmark model's ONNX export (default) or the torch model itself",
    )
    parser.add_argument(
        "--precision",
        type=_settings,
        help="settings for limit and service, comma-separated, e.g. int8,fp32 (default: the one "
        "the service would choose here among those validated; --quick: fp32)",
    )
    parser.add_argument(
        "--model", help=f"a model of {CATALOG_ENV}'s catalog instead of the benchmark model"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    levels = [int(n) for n in (args.levels or ("1,4" if args.quick else "1,8,32")).split(",")]
    started = datetime.datetime.now(datetime.UTC)
    facts = machine_facts()
    text_count = args.texts or (QUICK_TEXT_COUNT if args.quick else TEXT_COUNT)
    texts = moderation_texts(text_count)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moderation-bench-") as work_dir:
        work = Path(work_dir)
        if args.model:
            spec = load_catalog().find(args.model)
            if spec is None:
                raise SystemExit(f"model {args.model!r} is not in the catalog")
        else:
            spec = bench_spec(ensure_bench_model(args.quick), Backend(args.backend))
        # bf16 autocast's per-operator casts outweigh the arithmetic of a tiny model.
        default = [FP32_CPU] if args.quick else [choice_on_this_node(spec).setting]
        settings: list[Setting] = args.precision or default
        print(
            f"model {spec.tag} ({spec.backend.value}; {', '.join(map(str, settings))}), "
            f"bench/texts.py's mix, levels {levels}, {text_count} texts each",
            flush=True,
        )
        runs, batches = [], []
        for setting in settings:
            alone = spec.model_copy(update={"validated": (setting,)})
            runs_as = choice_on_this_node(alone)
            if runs_as.fallback:
                print(f"  the service will not run {setting} here: {runs_as.reason}", flush=True)
            scorer = reference_scorer(spec, setting)
            forward_p50_ms, limit, cpu_per_text = bench_limit(scorer, texts, levels)
            catalog = write_catalog(work / f"catalog-{str(setting).replace(':', '-')}.yaml", alone)
            service, raw, idle = bench_service(catalog, texts, levels, work, scorer)
            del scorer
            gc.collect()
            batches.append(raw)
            runs.append(
                SettingRun(
                    setting=str(setting),
                    service_runs=str(runs_as.setting),
                    forward_p50_ms=forward_p50_ms,
                    limit=limit,
                    service=service,
                    idle=idle,
                    limit_cpu_seconds_per_text=cpu_per_text,
                )
            )
        # The MVP: torch fp32, one forward per request, whatever the service runs.
        baseline_catalog = write_catalog(work / "baseline-catalog.yaml", torch_fp32(spec))
        baseline = bench_baseline(baseline_catalog, texts, levels, work)
        for log in work.glob("*.log"):
            shutil.copy(log, args.out / log.name)
    facts |= {
        "load_average_at_end": os.getloadavg(),
        "date": started.isoformat(timespec="seconds"),
        "texts": f"bench/texts.py, {text_count} texts, seed {SEED}",
        "inference_layout": inference_layout().__dict__,
        "limit_cpu_seconds_per_text": runs[0].limit_cpu_seconds_per_text,
    }
    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)])
    results = Results(
        machine=facts,
        command=command,
        model=f"{spec.name} ({spec.tag}, {spec.backend.value}, service and limit in "
        f"{runs[0].setting}, baseline fp32)",
        limit=runs[0].limit,
        service=runs[0].service,
        baseline=baseline,
        settings=runs,
        targets=targets(runs[0], baseline, read_cpu_flags()),
    )
    (args.out / "results.json").write_text(results.model_dump_json(indent=2) + "\n")
    draw_plots(results, args.out)
    table = markdown(results, batches[0])
    (args.out / "results.md").write_text(table)
    if not args.quick:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        stem = args.results_dir / started.strftime("%Y-%m-%d")
        stem.with_suffix(".md").write_text(table)
        stem.with_suffix(".json").write_text(results.model_dump_json(indent=2) + "\n")
    print(table)
    print(f"wrote {args.out}/results.json, throughput.png, p99.png, results.md")
    # A quick run proves the harness; its tiny model and short levels are not held to targets.
    return 0 if args.quick or all(target.met for target in results.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
