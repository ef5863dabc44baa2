"""The moderation API: `bentoml serve service.app:Moderation`.

One process holds the HTTP routes (OpenAI-shaped, auth, limits, logs, metrics) and the models.
Concurrent requests are batched in process (service/batching.py): inference lanes (one
single-threaded model call per core by default) score what is queued, per model. It replaced a
front service calling a batchable scorer service over a local socket, which was slower when idle
and failed now and then (docs/performance.md).
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
    Wraps,
    create_app,
    http_stack,
    off_loop_when_large,
    read_moderation_request,
    state,
)
from service.auth import configured_api_keys
from service.batching import Overloaded
from service.catalog import ModelSpec, load_catalog, model_attribute
from service.http_protocol import install as install_strict_http
from service.metrics import REQUESTS_IN_FLIGHT
from service.moderation import LoadedModels, Moderator, NotReady
from service.rate_limit import KeyRateLimiter, retry_after
from service.release import bento_tag
from service.request_log import bounded, limit_client_error_lines
from service.schemas import (
    ErrorBody,
    ModelList,
    ModerationResponse,
    moderation_request_schema,
)
from service.settings import Settings
from service.shutdown import drain_on_sigterm
from service.store import LocalModel
from service.version import API_VERSION, APP_VERSION

# BentoML records an OpenTelemetry span for every request even when it samples none, and its
# traffic-timeout timer (never cancelled) keeps each request's context, span included, alive for
# the whole timeout: memory grew with request rate x timeout (the soak test's RSS). Nothing here
# exports traces, so spans are off unless an operator sets OTEL_SDK_DISABLED=false. The SDK reads
# it when BentoML builds its tracer provider, as the worker starts the app, not at import.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

SETTINGS = Settings.from_env()
# Read at import: BentoML packs the models that the service class names as attributes.
CATALOG = load_catalog()
api = create_app(SETTINGS)
install_strict_http(SETTINGS.header_timeout_s)
limit_client_error_lines(SETTINGS.client_error_lines_per_s)
# Retry-After (seconds) when the queue is full, and while the models are not loaded.
RETRY_BUSY_S = 1
RETRY_UNAVAILABLE_S = 5
# Characters of a client's value that an error message repeats.
MAX_REFLECTED_CHARS = 64
# BentoML's own request timeout, a backstop behind ours (it would answer 504 without our body).
BENTOML_TIMEOUT_MARGIN_S = 5


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: each status answers with the OpenAI error body."""
    return {status: {"model": ErrorBody} for status in statuses}


class _Moderation:
    @bentoml.on_deployment
    def refuse_to_serve_without_keys() -> None:
        """Fail `bentoml serve` before any worker starts, with one line and exit status 1.

        BentoML runs deployment hooks once, in the serving process; a worker that failed in
        `__init__` instead would be respawned for ever (outside a container).
        """
        configured_api_keys(auth_disabled=SETTINGS.auth_disabled, hashes=SETTINGS.api_key_hashes)

    def __init__(self) -> None:
        """Serve at once (/readyz 503) while the models load on an inference thread."""
        self.settings = SETTINGS
        self.moderator = Moderator(CATALOG, SETTINGS)
        # Characters a minute per key: the model's work, which requests alone do not bound.
        self.char_limiter = (
            KeyRateLimiter(SETTINGS.key_chars_per_minute, SETTINGS.key_chars_per_minute)
            if SETTINGS.key_chars_per_minute
            else None
        )
        self.draining = False
        self.moderator.start(self)
        drain_on_sigterm(self._drain)

    def _drain(self) -> None:
        self.draining = True

    async def __is_ready__(self) -> bool:
        """Ready once every catalog model is loaded, until SIGTERM."""
        return self.moderator.models is not None and not self.draining

    @bentoml.on_shutdown
    async def stop_batcher(self) -> None:
        """After uvicorn has answered every accepted request."""
        await self.moderator.stop()

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
        self._loaded_models()
        spec = self._model(body.model)
        facts = state(request.scope)
        input_chars = sum(map(len, texts))
        facts.update(
            model=spec.name, model_tag=spec.tag, inputs=len(texts), input_chars=input_chars
        )
        # Every limit from here on counts what reaches the model.
        prepared = await off_loop_when_large(
            functools.partial(self.moderator.prepare, spec, texts), input_chars
        )
        key_id: str | None = facts.get("api_key_id")
        self._charge_characters(key_id, max(input_chars, sum(map(len, prepared))))
        # The request's deadline is RequestDeadline's (service/api.py): 504, and the queued
        # texts leave the queue with the cancelled handler.
        try:
            results = await self.moderator.moderate(spec, prepared, client=key_id)
        except Overloaded as error:
            raise ApiError(
                503,
                "The server is overloaded; retry shortly.",
                code="overloaded",
                headers={"Retry-After": str(RETRY_BUSY_S)},
            ) from error
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
        try:
            return self.moderator.loaded()
        except NotReady as error:
            raise ApiError(
                503,
                "A model could not be loaded; the server log says which."
                if error.load_failed
                else "The models are still loading; retry shortly.",
                code="not_ready",
                headers={"Retry-After": str(RETRY_UNAVAILABLE_S)},
            ) from None

    def _model(self, name: str | None) -> ModelSpec:
        spec = self.moderator.find(name)
        if spec is None:
            # Named in part: the whole value could be megabytes, sent back to the client.
            raise ApiError(
                404,
                f"The model `{bounded(name or '', MAX_REFLECTED_CHARS)}` does not exist.",
                param="model",
                code="model_not_found",
            )
        return spec


# Before the decorators: BentoML packs the models it finds on the class (not in __init__).
for _spec in CATALOG.models:
    setattr(_Moderation, model_attribute(_spec.name), LocalModel(_spec.tag))
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
# The server's part of the stack (service/api.py `http_stack`); BentoML runs the first added
# outermost, so the list's order is kept.
for wraps, middleware in http_stack(SETTINGS):
    if wraps is Wraps.SERVER:
        Moderation.add_asgi_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
