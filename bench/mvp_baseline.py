"""The seed "laptop MVP" the kit is measured against: `python -m bench.mvp_baseline --port 8000`.

What a moderation API looks like before the kit: one process, FastAPI + uvicorn, a sync endpoint
that calls the model once per request (no batching), no auth, no request log, no metrics. It
scores with the same model from the same BentoML store through the same code
(`service.moderation.CategoryScorer`) and answers the same OpenAI shape, so a benchmark against it
measures the serving architecture, not the model. Leaving out auth and logging favours the MVP.
"""

from __future__ import annotations

import argparse
import uuid

import bentoml
import uvicorn
from fastapi import FastAPI, HTTPException

from service.catalog import FP32_CPU, load_catalog
from service.hardware import Choice
from service.moderation import CategoryScorer, moderate
from service.schemas import ModerationRequest, ModerationResponse


def build_app(model: str | None = None) -> FastAPI:
    """Load one catalog model (default: the catalog's default) and serve it naively."""
    spec = load_catalog().find(model)
    if spec is None:
        raise SystemExit(f"model {model!r} is not in the catalog")
    # The MVP ran torch fp32 on the CPU, whatever this machine would choose.
    scorer = CategoryScorer(spec, bentoml.models.get(spec.tag), Choice(FP32_CPU, "the MVP"))
    app = FastAPI(title="moderation MVP baseline")

    @app.get("/livez")
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/moderations")
    def create_moderation(body: ModerationRequest) -> ModerationResponse:
        if not body.texts:
            raise HTTPException(400, "'input' must not be empty.")
        results = [moderate(spec, scores) for scores in scorer.score(body.texts)]
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=spec.name, results=results)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mvp_baseline", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", help="catalog model name (default: the catalog's default)")
    args = parser.parse_args(argv)
    uvicorn.run(
        build_app(args.model),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
