"""Two serving designs side by side in one run: this tree against another git revision.

`python -m bench.designs --baseline <rev>` serves `service.app:Moderation` from this working tree
and from `git archive <rev>` (e.g. the revision before the front->scorer hop was removed), both at
once on loopback with the same model store, catalog and API key, and measures, interleaved so
that both see the same machine load: the idle latency of one request (sequential requests with a
pause between them) and throughput and latency at each concurrency, for each model. The catalog
is the shipped one plus a tiny random-weight DeBERTa (bench/deberta.py), built and imported into
the store here. Writes build/bench/designs.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import yaml
from pydantic import BaseModel

from bench.deberta import KOALA_CATEGORIES, build_tiny_deberta
from bench.load import LevelResult, run_level
from bench.run import machine_facts
from bench.servers import REPO_ROOT, ready, start_server
from service.auth import hash_key
from tools.model_import import import_model

OUT = REPO_ROOT / "build" / "bench" / "designs.json"
IDLE_REQUESTS = 40
IDLE_PAUSE_S = 0.25


class IdleLatency(BaseModel):
    requests: int
    p50_ms: float
    p95_ms: float
    errors: int


class DesignResult(BaseModel):
    design: str
    model: str
    idle: IdleLatency
    levels: list[LevelResult]


def idle_latency(base_url: str, model: str, headers: dict[str, str]) -> IdleLatency:
    """One request at a time, with a pause between them, so that each finds the server idle."""
    latencies, errors = [], 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for index in range(IDLE_REQUESTS):
            time.sleep(IDLE_PAUSE_S)
            started = time.perf_counter()
            response = client.post(
                "/v1/moderations", json={"input": f"an idle request {index}", "model": model}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
    p50, p95 = np.percentile(latencies, [50, 95])
    return IdleLatency(
        requests=IDLE_REQUESTS,
        p50_ms=round(float(p50), 2),
        p95_ms=round(float(p95), 2),
        errors=errors,
    )


def tiny_catalog(work: Path) -> Path:
    """The shipped catalog plus `tiny-koala`, imported into the store from a fresh build."""
    tag = import_model(str(build_tiny_deberta(work / "tiny-koala")), name="tiny-koala").tag
    document = yaml.safe_load((REPO_ROOT / "service" / "catalog.yaml").read_text())
    document["models"].append(
        {
            "name": "tiny-koala",
            "backend": "transformers",
            "tag": str(tag),
            "labels": KOALA_CATEGORIES,
        }
    )
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def checkout(revision: str, work: Path) -> Path:
    """The tree of `revision`, extracted (not a worktree: nothing in the repository changes)."""
    archive = work / "baseline.tar"
    command = ["git", "archive", "--output", str(archive), revision]
    subprocess.run(  # noqa: S603 - the revision is one argument of git's
        command,
        cwd=REPO_ROOT,
        check=True,
    )
    tree = work / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


@contextlib.contextmanager
def serve(tree: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`tree`'s service, each server with a BENTOML_HOME of its own over the shared model store
    (bench/servers.py: it keeps the two from wiping each other's metrics)."""
    process, port = start_server({**env, "PYTHONPATH": str(tree)}, log, cwd=tree)
    base_url = f"http://127.0.0.1:{port}"
    with ready(process, base_url, log):
        yield base_url


def measure(
    urls: dict[str, str], model: str, levels: list[int], duration_s: float, headers: dict[str, str]
) -> list[DesignResult]:
    """Idle latency, then each level, the designs taking turns (each after a 1 s warm-up)."""
    results = {
        name: DesignResult(
            design=name, model=model, idle=idle_latency(url, model, headers), levels=[]
        )
        for name, url in urls.items()
    }
    options = {"model": model, "headers": headers}
    for concurrency in levels:
        for name, url in urls.items():
            asyncio.run(run_level(url, concurrency, 1.0, 1_000_000, **options))
            level = asyncio.run(run_level(url, concurrency, duration_s, 1_000_000, **options))
            results[name].levels.append(level)
            print(
                f"{model} / {name} / {concurrency} clients: {level.throughput_rps} req/s, "
                f"p99 {level.latency_ms.p99} ms, errors {level.errors}",
                flush=True,
            )
    return list(results.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.designs", description=__doc__)
    parser.add_argument("--baseline", required=True, help="git revision of the other design")
    parser.add_argument("--baseline-name", default="baseline")
    parser.add_argument("--name", default="this tree")
    parser.add_argument("--models", default="profanity-check,tiny-koala")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    facts = machine_facts()
    api_key = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {api_key}"}
    results: list[DesignResult] = []
    with tempfile.TemporaryDirectory(prefix="moderation-designs-") as scratch:
        work = Path(scratch)
        env = {key: value for key, value in os.environ.items() if not key.startswith("MODERATION_")}
        env["MODERATION_API_KEY_HASHES"] = hash_key(api_key)
        env["MODERATION_CATALOG"] = str(tiny_catalog(work))
        trees = {args.name: REPO_ROOT, args.baseline_name: checkout(args.baseline, work)}
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(serve(tree, env, work / f"server-{index}.log"))
                for index, (name, tree) in enumerate(trees.items())
            }
            for model in args.models.split(","):
                results += measure(urls, model, levels, args.duration, headers)
    report = {
        "command": " ".join(["python -m bench.designs", *(sys.argv[1:] if argv is None else argv)]),
        "machine": facts,
        "load_average_at_end": os.getloadavg(),
        "results": [result.model_dump() for result in results],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results))
    return 0


def markdown(results: list[DesignResult]) -> str:
    """One row per model and design: idle latency, then req/s and p99 at each concurrency."""
    levels = results[0].levels
    rows = [
        "| model | design | idle p50 / p95 ms | "
        + " | ".join(f"{level.concurrency} clients: req/s, p99 ms" for level in levels)
        + " | errors |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in levels) + " | ---: |",
    ]
    for result in results:
        idle = result.idle
        cells = " | ".join(
            f"{level.throughput_rps:.0f}, {level.latency_ms.p99:.0f}" for level in result.levels
        )
        errors = idle.errors + sum(level.errors for level in result.levels)
        rows.append(
            f"| {result.model} | {result.design} | {idle.p50_ms:.1f} / {idle.p95_ms:.1f} "
            f"| {cells} | {errors} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
