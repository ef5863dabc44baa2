"""The moderation API: `bentoml serve service.app:Moderation`.

One process holds the HTTP routes (OpenAI-shaped, auth, limits, logs, metrics) and the models.
Concurrent requests are batched in process (service/batching.py): one inference thread scores
what is queued, per model. It replaced a front service calling a batchable scorer service over a
local socket, which was slower when idle and failed now and then (docs/performance.md).
"""

from __future__ import annotations

import functools
import os
import uuid
from typing import Any

import bentoml
from fastapi import Request

from service.api import (
    BEARER_AUTH,
    ApiError,
    HardenedResponses,
    RequestId,
    create_app,
    off_loop_when_large,
    read_moderation_request,
    state,
)
from service.api_docs import ApiDocs
from service.auth import configured_api_keys
from service.batching import Batcher, BatchLimits, Overloaded
from service.catalog import ModelSpec
from service.categories import CATEGORIES, Category
from service.http_protocol import install as install_strict_http
from service.inference import CATALOG, LoadedModels, ModelLoadError, attach_models
from service.metrics import BATCH_SIZE, FLAGGED, INFERENCE_LATENCY, INPUT_CHARS, REQUESTS_IN_FLIGHT
from service.rate_limit import KeyRateLimiter, retry_after
from service.release import ReleaseVersion, bento_tag
from service.request_log import log_event
from service.schemas import (
    ErrorBody,
    ModelList,
    ModerationResponse,
    ModerationResult,
    moderation_request_schema,
)
from service.settings import Settings
from service.shutdown import drain_on_sigterm
from service.version import API_VERSION, APP_VERSION

# BentoML records an OpenTelemetry span for every request even when it samples none, and its
# traffic-timeout timer (never cancelled) keeps each request's context, span included, alive for
# the whole timeout: memory grew with request rate x timeout (the soak test's RSS). Nothing here
# exports traces, so spans are off unless an operator sets OTEL_SDK_DISABLED=false. The SDK reads
# it when BentoML builds its tracer provider, as the worker starts the app, not at import.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

api = create_app()
SETTINGS = Settings.from_env()
install_strict_http(SETTINGS.header_timeout_s)
# Retry-After (seconds) when the queue is full, and while the models are not loaded.
RETRY_BUSY_S = 1
RETRY_UNAVAILABLE_S = 5
# BentoML's own request timeout, a backstop behind ours (it would answer 504 without our body).
BENTOML_TIMEOUT_MARGIN_S = 5


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: each status answers with the OpenAI error body."""
    return {status: {"model": ErrorBody} for status in statuses}


def moderate(spec: ModelSpec, scores: dict[Category, float]) -> ModerationResult:
    """Apply the catalog thresholds: a category is flagged at or over its threshold."""
    flags = spec.flags(scores)
    return ModerationResult(
        flagged=any(flags.values()),
        categories=flags,
        category_scores={category: scores[category] for category in CATEGORIES},
    )


class _Moderation:
    @bentoml.on_deployment
    def refuse_to_serve_without_keys() -> None:
        """Fail `bentoml serve` before any worker starts, with one line and exit status 1.

        BentoML runs deployment hooks once, in the serving process; a worker that failed in
        `__init__` instead would be respawned for ever (outside a container).
        """
        configured_api_keys(auth_disabled=SETTINGS.auth_disabled, hashes=SETTINGS.api_key_hashes)

    def __init__(self) -> None:
        """Serve at once (/readyz 503) while the models load on the inference thread."""
        self.settings = SETTINGS
        api.state.api_keys = configured_api_keys(
            auth_disabled=SETTINGS.auth_disabled, hashes=SETTINGS.api_key_hashes
        )
        api.state.max_body_bytes = self.settings.max_body_bytes
        api.state.body_timeout_s = self.settings.body_timeout_s
        api.state.request_timeout_s = self.settings.request_timeout_s
        api.state.key_rate_limiter = (
            KeyRateLimiter(self.settings.key_requests_per_minute, self.settings.key_burst)
            if self.settings.key_requests_per_minute
            else None
        )
        # Characters a minute per key: the model's work, which requests alone do not bound.
        self.char_limiter = (
            KeyRateLimiter(self.settings.key_chars_per_minute, self.settings.key_chars_per_minute)
            if self.settings.key_chars_per_minute
            else None
        )
        self.models: LoadedModels | None = None
        self.load_failed = False
        self.draining = False
        self.batcher: Batcher[dict[Category, float]] = Batcher(
            self._score,
            BatchLimits(
                max_texts=SETTINGS.max_batch_texts,
                max_chars=SETTINGS.max_batch_chars,
                max_queued_requests=SETTINGS.max_queued_requests,
                max_queued_texts=SETTINGS.max_queued_texts,
            ),
            observe=_observe_batch,
        )
        self.batcher.start_on_thread(self._load_models)
        drain_on_sigterm(self._drain)

    def _load_models(self) -> None:
        """A model that cannot load leaves the pod unready, said in one line (no retry loop)."""
        try:
            self.models = LoadedModels.load(self)
        except ModelLoadError as error:
            self.load_failed = True
            for problem in error.problems:
                log_event("ERROR", problem)

    def _score(self, model: str, texts: list[str]) -> list[dict[Category, float]]:
        assert self.models is not None  # requests reach the batcher only once loaded
        return self.models.score(model, texts)

    def _drain(self) -> None:
        self.draining = True

    async def __is_ready__(self) -> bool:
        """Ready once every catalog model is loaded, until SIGTERM."""
        return self.models is not None and not self.draining

    @bentoml.on_shutdown
    async def stop_batcher(self) -> None:
        """After uvicorn has answered every accepted request."""
        await self.batcher.stop()

    @api.post(
        "/v1/moderations",
        response_model=ModerationResponse,
        responses=_error_responses(400, 401, 404, 408, 413, 429, 500, 503, 504),
        dependencies=[BEARER_AUTH],
        summary="Classify text(s) for harmful content (OpenAI Moderation API shape).",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": moderation_request_schema(
                            max_inputs=SETTINGS.max_inputs,
                            max_input_chars=SETTINGS.max_input_chars,
                        )
                    }
                },
            }
        },
    )
    async def create_moderation(self, request: Request) -> ModerationResponse:
        with REQUESTS_IN_FLIGHT.track_inprogress():
            return await self._moderate(request)

    async def _moderate(self, request: Request) -> ModerationResponse:
        # Parsed by hand so that `curl -d` (form content type) works like the OpenAI API.
        body = await read_moderation_request(
            request,
            max_inputs=self.settings.max_inputs,
            max_input_chars=self.settings.max_input_chars,
        )
        texts = body.texts
        models = self._loaded_models()
        spec = CATALOG.find(body.model)
        if spec is None:
            raise ApiError(
                404,
                f"The model `{body.model}` does not exist.",
                param="model",
                code="model_not_found",
            )
        facts = state(request.scope)
        input_chars = sum(map(len, texts))
        facts.update(
            model=spec.name, model_tag=spec.tag, inputs=len(texts), input_chars=input_chars
        )
        # Every limit from here on counts what reaches the model.
        prepared = await off_loop_when_large(
            functools.partial(models.prepare, spec.name, texts, self.settings.max_input_chars),
            input_chars,
        )
        key_id: str | None = facts.get("api_key_id")
        self._charge_characters(key_id, max(input_chars, sum(map(len, prepared))))
        # The request's deadline is RequestDeadline's (service/api.py): 504, and the queued
        # texts leave the queue with the cancelled handler.
        try:
            scores = await self.batcher.submit(spec.name, prepared, client=key_id)
        except Overloaded as error:
            raise ApiError(
                503,
                "The server is overloaded; retry shortly.",
                code="overloaded",
                headers={"Retry-After": str(RETRY_BUSY_S)},
            ) from error
        results = [moderate(spec, text_scores) for text_scores in scores]
        self._observe(spec, texts, results)
        facts["flagged"] = sum(result.flagged for result in results)
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=spec.name, results=results)

    @api.get(
        "/v1/models",
        response_model=ModelList,
        responses=_error_responses(401, 413, 429, 500, 503),
        dependencies=[BEARER_AUTH],
        summary="Loaded models.",
    )
    async def list_models(self) -> ModelList:
        return ModelList(
            data=self._loaded_models().cards(),
            app_version=APP_VERSION,
            api_version=API_VERSION,
            bento=bento_tag(),
        )

    def _charge_characters(self, key_id: str | None, chars: int) -> None:
        """429 once the key has had its characters this minute (not when auth is off)."""
        if self.char_limiter is None or key_id is None:
            return
        wait_s = self.char_limiter.acquire(key_id, chars)
        if wait_s is not None:
            raise ApiError(
                429,
                "Character rate limit reached for this API key; retry after the time in "
                "Retry-After.",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after(wait_s)},
            )

    def _loaded_models(self) -> LoadedModels:
        if self.models is None:
            raise ApiError(
                503,
                "A model could not be loaded; the server log says which."
                if self.load_failed
                else "The models are still loading; retry shortly.",
                code="not_ready",
                headers={"Retry-After": str(RETRY_UNAVAILABLE_S)},
            )
        return self.models

    @staticmethod
    def _observe(spec: ModelSpec, texts: list[str], results: list[ModerationResult]) -> None:
        for text in texts:
            INPUT_CHARS.labels(model=spec.name).observe(len(text))
        for result in results:
            for category, flagged in result.categories.items():
                if flagged:
                    FLAGGED.labels(model=spec.name, category=category).inc()


def _observe_batch(model: str, texts: int, seconds: float) -> None:
    BATCH_SIZE.labels(model=model).observe(texts)
    INFERENCE_LATENCY.labels(model=model).observe(seconds)


attach_models(_Moderation)  # before the decorators: BentoML packs the models it finds on the class
Moderation = bentoml.service(
    name="moderation",
    workers=1,
    traffic={"timeout": SETTINGS.request_timeout_s + BENTOML_TIMEOUT_MARGIN_S},
    # The API app writes one JSON line per request itself (service/request_log.py).
    logging={"access": {"enabled": False}},
    # BentoML's HTTP metrics label the raw request path, so any client could add series without
    # bound; the API app exports its own, labelled by route template (service/metrics.py).
    metrics={"enabled": False, "namespace": "bentoml_service"},
)(bentoml.asgi_app(api, path="/")(_Moderation))
Moderation.add_asgi_middleware(RequestId)
Moderation.add_asgi_middleware(ReleaseVersion)
Moderation.add_asgi_middleware(HardenedResponses)
Moderation.add_asgi_middleware(ApiDocs)
