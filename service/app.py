"""The moderation API: `bentoml serve service.app:Moderation`.

`Moderation` is the HTTP front (OpenAI-shaped routes, auth, limits, logs, metrics); it calls the
batchable `Scorer` (service/inference.py), where concurrent requests are batched per model.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import bentoml
from bentoml.exceptions import BentoMLException
from fastapi import Request

from service.api import (
    BEARER_AUTH,
    ApiError,
    HardenedResponses,
    RequestId,
    create_app,
    read_moderation_request,
    state,
)
from service.api_docs import ApiDocs
from service.auth import configured_api_keys
from service.catalog import ModelSpec
from service.categories import CATEGORIES, Category
from service.inference import CATALOG, ScoreItem, Scorer
from service.metrics import FLAGGED, INPUT_CHARS, REQUESTS_IN_FLIGHT
from service.rate_limit import KeyRateLimiter
from service.release import ReleaseVersion, bento_tag
from service.schemas import (
    ErrorBody,
    ModelList,
    ModerationResponse,
    ModerationResult,
    moderation_request_schema,
)
from service.settings import Settings
from service.version import API_VERSION, APP_VERSION

api = create_app()
SETTINGS = Settings.from_env()
SCORER_PROBE_TIMEOUT_S = 1.0


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: each status answers with the OpenAI error body."""
    return {status: {"model": ErrorBody} for status in statuses}


def moderate(spec: ModelSpec, scores: dict[Category, float]) -> ModerationResult:
    """Apply the catalog thresholds: a category is flagged at or over its threshold."""
    flags = {
        category: category in spec.covered_categories
        and scores[category] >= spec.threshold(category)
        for category in CATEGORIES
    }
    return ModerationResult(
        flagged=any(flags.values()),
        categories=flags,
        category_scores={category: scores[category] for category in CATEGORIES},
    )


@bentoml.service(
    name="moderation",
    traffic={"timeout": 60},
    # The API app writes one JSON line per request itself (service/request_log.py).
    logging={"access": {"enabled": False}},
    # BentoML's HTTP metrics label the raw request path, so any client could add series without
    # bound; the API app exports its own, labelled by route template (service/metrics.py).
    metrics={"enabled": False, "namespace": "bentoml_service"},
)
@bentoml.asgi_app(api, path="/")
class Moderation:
    scorer = bentoml.depends(Scorer)

    @bentoml.on_deployment
    def refuse_to_serve_without_keys() -> None:
        """Fail `bentoml serve` before any worker starts, with one line and exit status 1.

        BentoML runs deployment hooks once, in the serving process; a worker that failed in
        `__init__` instead would be respawned for ever (outside a container).
        """
        configured_api_keys(auth_disabled=SETTINGS.auth_disabled, hashes=SETTINGS.api_key_hashes)

    def __init__(self) -> None:
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
        self._scorer_ready = False

    async def __is_ready__(self) -> bool:
        """Ready once the scorer has loaded every catalog model (it answers its /readyz).

        Asked with a short timeout: while the scorer loads, its socket accepts but never answers.
        """
        if not self._scorer_ready:
            try:
                self._scorer_ready = await asyncio.wait_for(
                    self.scorer.is_ready(), SCORER_PROBE_TIMEOUT_S
                )
            except (TimeoutError, aiohttp.ClientError):
                return False
        return self._scorer_ready

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
        spec = CATALOG.find(body.model)
        if spec is None:
            raise ApiError(
                404,
                f"The model `{body.model}` does not exist.",
                param="model",
                code="model_not_found",
            )
        facts = state(request.scope)
        facts.update(
            model=spec.name, model_tag=spec.tag, inputs=len(texts), input_chars=sum(map(len, texts))
        )
        scores = await self._ask_scorer(
            "score", [ScoreItem(model=spec.name, text=text) for text in texts]
        )
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
            data=await self._ask_scorer("models"),
            app_version=APP_VERSION,
            api_version=API_VERSION,
            bento=bento_tag(),
        )

    async def _ask_scorer(self, method: str, *args: Any) -> Any:
        """Call the scorer; its failures become 503/500 OpenAI errors, never a stack trace.

        Its APIs are read-only, so a call lost to a connection closing under the client is retried
        once (pooled keep-alive connections: bentoml/BentoML#4971).
        """
        if not await self.__is_ready__():
            raise ApiError(503, "The models are still loading; retry shortly.")
        call = getattr(self.scorer.to_async, method)
        try:
            try:
                return await call(*args)
            except aiohttp.ClientConnectionError:
                return await call(*args)
        except aiohttp.ClientConnectionError as error:
            raise ApiError(503, "The model service is not available; retry.") from error
        except BentoMLException as error:
            status = 503 if error.error_code.value == 503 else 500
            raise ApiError(status, "The model service could not answer; retry.") from error

    @staticmethod
    def _observe(spec: ModelSpec, texts: list[str], results: list[ModerationResult]) -> None:
        for text in texts:
            INPUT_CHARS.labels(model=spec.name).observe(len(text))
        for result in results:
            for category, flagged in result.categories.items():
                if flagged:
                    FLAGGED.labels(model=spec.name, category=category).inc()


Moderation.add_asgi_middleware(RequestId)
Moderation.add_asgi_middleware(ReleaseVersion)
Moderation.add_asgi_middleware(HardenedResponses)
Moderation.add_asgi_middleware(ApiDocs)
