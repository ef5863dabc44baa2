"""Concurrency sweep, the kit against the seed MVP: `make bench` (or `python -m bench.run`).

Starts the kit (`bentoml serve service.app:Moderation`, one generated API key, offline default
model) and then the MVP baseline (bench/mvp_baseline.py, same model), each on a free loopback
port, loads each with bench/load.py at every concurrency level in turn, stops it, and writes
bench/results/<date>.json plus a Markdown table (<date>.md) with kit/MVP ratios. The models must
already be in the BentoML store (`make bench` runs `python -m service.store ensure-default`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
from pydantic import BaseModel

from bench.load import LevelResult, require_loopback, run_level
from service.auth import hash_key

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
BENTOML_CLI = str(Path(sys.executable).parent / "bentoml")
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


class Machine(BaseModel):
    cpu_count: int
    cpu_model: str
    platform: str
    python: str
    bentoml: str
    # Other work on the machine competes with the servers and the load generator: recorded.
    load_average_at_start: tuple[float, float, float]


class Ratio(BaseModel):
    """Kit divided by MVP at one concurrency (throughput: >1 is better; latency: <1 is better)."""

    concurrency: int
    throughput: float
    p50_latency: float
    p99_latency: float


class BenchReport(BaseModel):
    date: str
    command: str
    machine: Machine
    model: str
    duration_per_level_s: float
    max_requests_per_level: int
    load_average_at_end: tuple[float, float, float]
    kit: list[LevelResult]
    mvp: list[LevelResult]
    ratios: list[Ratio]


def machine() -> Machine:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return Machine(
        cpu_count=os.cpu_count() or 0,
        cpu_model=cpu_model,
        platform=platform.platform(),
        python=platform.python_version(),
        bentoml=metadata.version("bentoml"),
        load_average_at_start=os.getloadavg(),
    )


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(
    command: list[str],
    env: dict[str, str],
    ready_url: str,
    log_path: Path,
    cwd: Path = REPO_ROOT,
) -> Iterator[None]:
    """Run a server process group until the block ends; yield once `ready_url` answers 200."""
    require_loopback(ready_url)
    with log_path.open("wb") as log:
        # The command is built here from constants and a free port, never from user text.
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that stopping it stops its workers too
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers_ok(ready_url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{command[0]} did not become ready:\n{tail}")
            time.sleep(0.2)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _answers_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def sweep(
    base_url: str,
    levels: list[int],
    duration_s: float,
    max_requests: int,
    model: str | None,
    headers: dict[str, str],
) -> list[LevelResult]:
    """A short unrecorded warm-up, then each level in turn, printed as it finishes."""
    options = {"max_requests": max_requests, "model": model, "headers": headers}
    asyncio.run(run_level(base_url, max(levels), min(duration_s, 2.0), **options))
    results = []
    for concurrency in levels:
        result = asyncio.run(run_level(base_url, concurrency, duration_s, **options))
        print(
            f"  concurrency {concurrency:>3}: {result.throughput_rps:>7.1f} req/s, "
            f"p99 {result.latency_ms.p99:>7.1f} ms, errors {result.errors}",
            flush=True,
        )
        results.append(result)
    return results


def bench_kit(
    model: str | None, levels: list[int], duration_s: float, max_requests: int, work_dir: Path
) -> list[LevelResult]:
    """The kit as deployed: API key on, request log on (to a file), adaptive batching."""
    api_key = secrets.token_urlsafe(32)
    port = free_loopback_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODERATION_")}
    env.update(PYTHONPATH=str(REPO_ROOT), MODERATION_API_KEY_HASHES=hash_key(api_key))
    if catalog := os.environ.get("MODERATION_CATALOG"):
        env["MODERATION_CATALOG"] = catalog
    command = [BENTOML_CLI, "serve", "service.app:Moderation", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {api_key}"}
    print(f"kit on {base_url}", flush=True)
    with served(command, env, f"{base_url}/readyz", work_dir / "kit.log"):
        return sweep(base_url, levels, duration_s, max_requests, model, headers)


def bench_mvp(
    model: str | None, levels: list[int], duration_s: float, max_requests: int, work_dir: Path
) -> list[LevelResult]:
    port = free_loopback_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "bench.mvp_baseline", "--port", str(port)]
    if model:
        command += ["--model", model]
    base_url = f"http://127.0.0.1:{port}"
    print(f"MVP on {base_url}", flush=True)
    with served(command, env, f"{base_url}/livez", work_dir / "mvp.log"):
        return sweep(base_url, levels, duration_s, max_requests, model, {})


def ratios(kit: list[LevelResult], mvp: list[LevelResult]) -> list[Ratio]:
    def ratio(numerator: float, denominator: float) -> float:
        return round(numerator / denominator, 2) if denominator else float("nan")

    return [
        Ratio(
            concurrency=ours.concurrency,
            throughput=ratio(ours.throughput_rps, theirs.throughput_rps),
            p50_latency=ratio(ours.latency_ms.p50, theirs.latency_ms.p50),
            p99_latency=ratio(ours.latency_ms.p99, theirs.latency_ms.p99),
        )
        for ours, theirs in zip(kit, mvp, strict=True)
    ]


def markdown_table(report: BenchReport) -> str:
    """One row per concurrency: both servers side by side, then the kit/MVP ratios."""
    rows = [
        "| concurrency | kit req/s | MVP req/s | kit/MVP req/s | kit p50 / p95 / p99 ms "
        "| MVP p50 / p95 / p99 ms | kit/MVP p99 | kit requests per batch | errors kit / MVP |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ours, theirs, ratio in zip(report.kit, report.mvp, report.ratios, strict=True):
        batch = f"{ours.batch_sizes.mean:.1f}" if ours.batch_sizes else "n/a"
        rows.append(
            f"| {ours.concurrency} | {ours.throughput_rps:.0f} | {theirs.throughput_rps:.0f} "
            f"| {ratio.throughput:.2f} | {_latencies(ours)} | {_latencies(theirs)} "
            f"| {ratio.p99_latency:.2f} | {batch} | {ours.errors} / {theirs.errors} |"
        )
    return "\n".join(rows) + "\n"


def _latencies(result: LevelResult) -> str:
    latency = result.latency_ms
    return f"{latency.p50:.1f} / {latency.p95:.1f} / {latency.p99:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--levels", default="1,8,32,64", help="comma-separated concurrencies")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per level")
    parser.add_argument("--model", help="catalog model name (default: the catalog's default)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    started = datetime.datetime.now(datetime.UTC)
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="moderation-bench-") as work:
        kit = bench_kit(args.model, levels, args.duration, args.max_requests, Path(work))
        mvp = bench_mvp(args.model, levels, args.duration, args.max_requests, Path(work))
    report = BenchReport(
        date=started.isoformat(timespec="seconds"),
        command=" ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]),
        machine=facts,
        model=args.model or "catalog default",
        duration_per_level_s=args.duration,
        max_requests_per_level=args.max_requests,
        load_average_at_end=os.getloadavg(),
        kit=kit,
        mvp=mvp,
        ratios=ratios(kit, mvp),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / started.strftime("%Y-%m-%d")
    stem.with_suffix(".json").write_text(report.model_dump_json(indent=2) + "\n")
    table = markdown_table(report)
    stem.with_suffix(".md").write_text(
        f"Measured {report.date} on {facts.cpu_count} CPUs ({facts.cpu_model}), "
        f"1-min load average {facts.load_average_at_start[0]:.1f} at start, "
        f"{report.load_average_at_end[0]:.1f} at end; model: {report.model}; "
        f"{args.duration:g} s per level.\n\n{table}"
    )
    print(table)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
