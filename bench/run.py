"""Three contestants, one run, the same texts: `make bench` (or `python -m bench.run`).

- `limit`: the kit's own scorer in this process (`service.moderation.CategoryScorer`), fed the
  same texts sorted by length (little padding) in batches of N back to back, in the setting the
  service runs: what the hardware allows; its best N is the limit.
- `service`: the kit over HTTP as deployed (`bentoml serve service.app:Moderation`, API key on,
  request log on), N concurrent clients, one text per request.
- `baseline`: the seed MVP (bench/mvp_baseline.py): one process, the model called once per
  request, fp32, N concurrent clients.

The model is a DeBERTa-v3-base-shaped classifier with random weights (bench/models.py, built
once into the BentoML store); the texts are bench/texts.py's moderation mix. Every `MODERATION_*`
setting in the environment reaches the service (and MODERATION_INFERENCE_THREADS all three);
the harness sets the API key and, unless MODERATION_CATALOG names one, the catalog.

`--precision int8,bf16,fp32` runs limit and service in each setting side by side (the first
fills `limit` and `service`; every one is in `settings`, with its CPU seconds per text); the
default is the setting the service would choose on this machine. `machine` records the CPU model
and its features (the /proc/cpuinfo flags that decide a setting).

Writes build/bench/results.json (`{"machine", "command", "model", "limit", "service",
"baseline", "settings"}`), build/bench/throughput.png and p99.png, build/bench/results.md,
and (not with --quick) the dated copy bench/results/<date>.md/.json. `--quick` runs the same
harness on a tiny model of the same builder in about a minute: CI runs it to prove the harness
works.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import bentoml
import numpy as np
import yaml
from pydantic import BaseModel

from bench.load import LevelResult, run_level
from bench.models import bench_spec, ensure_bench_model, torch_fp32
from bench.servers import REPO_ROOT, free_port, ready, start_process, start_server
from bench.texts import SEED, moderation_texts
from service.auth import hash_key
from service.catalog import (
    CATALOG_ENV,
    FP32_CPU,
    PRECISIONS,
    Backend,
    Device,
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
TEXT_COUNT = 512
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


class SettingRun(BaseModel):
    """Limit and service in one setting (`service_runs`: what the service chose for it here)."""

    setting: str
    service_runs: str
    limit: list[Entry]
    service: list[Entry]
    limit_cpu_seconds_per_text: dict[str, float]


class Results(BaseModel):
    machine: dict[str, object]
    command: str
    model: str
    limit: list[Entry]
    service: list[Entry]
    baseline: list[Entry]
    settings: list[SettingRun]


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


def bench_limit(
    spec: ModelSpec,
    setting: Setting,
    texts: Sequence[str],
    levels: list[int],
    duration_s: float,
    cpu_per_text: dict[str, float],
) -> list[Entry]:
    """Batches of N consecutive texts of the length-sorted list, scored back to back in this
    process in `setting` (as the batcher groups by length, so padding is slight); each text of a
    batch waits the whole batch, so a batch's time is its texts' latency. `cpu_per_text` gets
    the CPU seconds per text at each N: unlike wall time, other work on the machine barely
    changes it, so it is the figure capacity planning scales from."""
    choice = Choice(setting, "asked for by bench.run")
    scorer = CategoryScorer(spec, bentoml.models.get(spec.tag), choice)
    texts = sorted(texts, key=len)
    scorer.score(texts[:2])  # warm-up: first calls allocate
    results = []
    for size in levels:
        latencies: list[float] = []
        done = 0
        cpu_started = time.process_time()
        started = time.perf_counter()
        while time.perf_counter() - started < duration_s:
            offset = done % len(texts)
            batch = [texts[(offset + i) % len(texts)] for i in range(size)]
            sent = time.perf_counter()
            scorer.score(batch)
            latencies += [time.perf_counter() - sent] * size
            done += size
        elapsed = time.perf_counter() - started
        cpu_per_text[str(size)] = round((time.process_time() - cpu_started) / done, 4)
        results.append(_printed("limit", _entry(size, done, elapsed, latencies, 0)))
    del scorer
    gc.collect()
    return results


def sweep(
    name: str,
    base_url: str,
    texts: Sequence[str],
    levels: list[int],
    duration_s: float,
    headers: dict[str, str],
) -> tuple[list[Entry], list[LevelResult]]:
    """A few unrecorded requests one at a time (a warm-up at full concurrency would leave a slow
    model a backlog that the first levels then wait behind), then each level in turn."""
    options = {"texts": texts, "headers": headers, "request_timeout_s": REQUEST_TIMEOUT_S}
    asyncio.run(run_level(base_url, 1, REQUEST_TIMEOUT_S, max_requests=WARM_UP_REQUESTS, **options))
    options["max_requests"] = 1_000_000
    entries, raw = [], []
    for concurrency in levels:
        level = asyncio.run(run_level(base_url, concurrency, duration_s, **options))
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


def bench_service(
    catalog: Path, texts: Sequence[str], levels: list[int], duration_s: float, work: Path
) -> tuple[list[Entry], list[LevelResult]]:
    """The kit as deployed: API key on, request log on, its own batching."""
    api_key = secrets.token_urlsafe(32)
    env = _server_env(catalog, keep_moderation=True)
    env.pop("MODERATION_AUTH_DISABLED", None)
    env.update(MODERATION_API_KEY_HASHES=hash_key(api_key))
    env.pop("MODERATION_API_KEY_HASHES_FILE", None)
    process, port = start_server(env, work / "service.log")
    base_url = f"http://127.0.0.1:{port}"
    print(f"service on {base_url}", flush=True)
    with ready(process, base_url, work / "service.log"):
        return sweep(
            "service", base_url, texts, levels, duration_s, {"Authorization": f"Bearer {api_key}"}
        )


def bench_baseline(
    catalog: Path, texts: Sequence[str], levels: list[int], duration_s: float, work: Path
) -> list[Entry]:
    port = free_port()
    command = [sys.executable, "-m", "bench.mvp_baseline", "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    print(f"baseline on {base_url}", flush=True)
    process = start_process(
        command, _server_env(catalog, keep_moderation=False), work / "baseline.log"
    )
    with ready(process, base_url, work / "baseline.log", probe="/livez"):
        return sweep("baseline", base_url, texts, levels, duration_s, {})[0]


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
        f"model {results.model}; {facts['duration_per_level_s']} s per level; "
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
    best_limit = max(results.limit, key=lambda e: e.texts_per_s)
    best_service = max(results.service, key=lambda e: e.texts_per_s)
    top_service, top_baseline = results.service[-1], results.baseline[-1]
    rows += [
        "",
        f"- service at its best (N={best_service.concurrency}) / limit at its best "
        f"(N={best_limit.concurrency}): "
        f"{_ratio(best_service.texts_per_s, best_limit.texts_per_s)} (target >= 0.9)",
        f"- at N={top_service.concurrency}: service/baseline throughput "
        f"{_ratio(top_service.texts_per_s, top_baseline.texts_per_s)} (target >= 6), "
        f"p99 {_ratio(top_service.p99_ms, top_baseline.p99_ms)} (target <= 0.5)",
        "",
        "| setting (service runs) | limit best texts/s | service best texts/s | service/limit "
        "| limit CPU s per text at each N |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for run in results.settings:
        limit_best = max(entry.texts_per_s for entry in run.limit)
        service_best = max(entry.texts_per_s for entry in run.service)
        cpu = ", ".join(f"{n}: {s}" for n, s in run.limit_cpu_seconds_per_text.items())
        rows.append(
            f"| {run.setting} ({run.service_runs}) | {limit_best:.2f} | {service_best:.2f} "
            f"| {_ratio(service_best, limit_best)} | {cpu} |"
        )
    return "\n".join(rows) + "\n"


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
    parser.add_argument("--duration", type=float, help="seconds per level (default 20)")
    parser.add_argument(
        "--precision",
        type=_settings,
        help="settings for limit and service, comma-separated, e.g. int8,bf16,fp32 (default: the "
        "one the service would choose here; --quick: fp32)",
    )
    parser.add_argument(
        "--model", help=f"a model of {CATALOG_ENV}'s catalog instead of the benchmark model"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    levels = [int(n) for n in (args.levels or ("1,4" if args.quick else "1,8,32")).split(",")]
    duration_s = args.duration or (2.0 if args.quick else 20.0)
    started = datetime.datetime.now(datetime.UTC)
    facts = machine_facts()
    texts = moderation_texts(TEXT_COUNT)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moderation-bench-") as work_dir:
        work = Path(work_dir)
        if args.model:
            spec = load_catalog().find(args.model)
            if spec is None:
                raise SystemExit(f"model {args.model!r} is not in the catalog")
        else:
            every_cpu_setting = tuple(
                Setting(precision=p) for p in PRECISIONS[Backend.TRANSFORMERS, Device.CPU]
            )
            spec = bench_spec(ensure_bench_model(args.quick), FP32_CPU).model_copy(
                update={"validated": every_cpu_setting}
            )
        # bf16 autocast's per-operator casts outweigh the arithmetic of a tiny model.
        default = [FP32_CPU] if args.quick else [choice_on_this_node(spec).setting]
        settings: list[Setting] = args.precision or default
        print(
            f"model {spec.tag} ({spec.backend.value}; {', '.join(map(str, settings))}), "
            f"bench/texts.py's mix, levels {levels}, {duration_s:g} s each",
            flush=True,
        )
        runs, batches = [], []
        for setting in settings:
            alone = spec.model_copy(update={"validated": (setting,)})
            runs_as = choice_on_this_node(alone)
            if runs_as.fallback:
                print(f"  the service will not run {setting} here: {runs_as.reason}", flush=True)
            cpu_per_text: dict[str, float] = {}
            limit = bench_limit(spec, setting, texts, levels, duration_s, cpu_per_text)
            catalog = write_catalog(work / f"catalog-{str(setting).replace(':', '-')}.yaml", alone)
            service, raw = bench_service(catalog, texts, levels, duration_s, work)
            batches.append(raw)
            runs.append(
                SettingRun(
                    setting=str(setting),
                    service_runs=str(runs_as.setting),
                    limit=limit,
                    service=service,
                    limit_cpu_seconds_per_text=cpu_per_text,
                )
            )
        # The MVP: torch fp32, one forward per request, whatever the service runs.
        baseline_catalog = write_catalog(work / "baseline-catalog.yaml", torch_fp32(spec))
        baseline = bench_baseline(baseline_catalog, texts, levels, duration_s, work)
        for log in work.glob("*.log"):
            shutil.copy(log, args.out / log.name)
    facts |= {
        "load_average_at_end": os.getloadavg(),
        "date": started.isoformat(timespec="seconds"),
        "duration_per_level_s": duration_s,
        "texts": f"bench/texts.py, {TEXT_COUNT} texts, seed {SEED}",
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
