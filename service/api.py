"""The HTTP layer: FastAPI app, OpenAI error bodies, and the per-request middlewares.

Routes are methods of the `Moderation` service (service/app.py); this module holds what wraps
them, so every error, including ones raised before a route runs, has the OpenAI error body.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Message, Receive, Scope, Send

from service.api_docs import API_INFO
from service.auth import ApiKeys, bearer_token
from service.metrics import REQUESTS
from service.middleware import HttpMiddleware
from service.release import release_version
from service.request_log import log_request
from service.schemas import ErrorBody, ErrorDetail
from service.version import APP_VERSION

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
PROTECTED_PREFIX = "/v1/"

# What handlers may put in the request state for the log line; nothing else gets logged.
LOGGED_FACTS = (
    "request_id",
    "api_key_id",
    "model",
    "model_tag",
    "inputs",
    "input_chars",
    "flagged",
    "error",  # the cause of a 5xx: exception type and message, never the input
)


class ApiError(Exception):
    """An error the client should see, with the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers


def describe(error: BaseException) -> str:
    """`Type: message` on one line, for the log line of a 5xx."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}"[:500] if message else type(error).__name__


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    body = ErrorBody(error=ErrorDetail(message=message, type=error_type, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(error: dict[str, Any]) -> tuple[str, str | None]:
    """A one-line message and the offending parameter from a pydantic error."""
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    param = location[0] if location else None
    if error.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if error.get("type") == "missing":
        return f"Missing required parameter: '{param}'.", param
    if param == "input":
        return "'input' must be a string or a list of strings.", param
    if param is None:
        return "The request body must be a JSON object.", None
    return f"Invalid value for '{param}': {error.get('msg', 'invalid')}.", param


def create_app() -> FastAPI:
    """A FastAPI app whose errors all carry the OpenAI error body."""
    app = FastAPI(
        title=API_INFO["title"],
        version=APP_VERSION,
        description=API_INFO["description"],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # BentoML serves the merged spec at /docs.json
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        if error.status >= 500:
            state(request.scope)["error"] = describe(error.__cause__ or error)
        return error_response(
            error.status, error.message, param=error.param, code=error.code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def _invalid_request(
        _: Request, error: RequestValidationError | ValidationError
    ) -> JSONResponse:
        message, param = _validation_message(error.errors()[0])
        return error_response(400, message, param=param, code="invalid_value")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, __: Exception) -> JSONResponse:
        # Starlette answers this one outside every middleware: RequestLog has logged its cause.
        return error_response(500, "The server had an error processing the request.")

    app.router.routes.append(UnknownApiPath(app.router.routes))
    # The last added runs first: log every answer, then check the key, then bound the body.
    app.add_middleware(BodySizeLimit)
    app.add_middleware(ApiKeyAuth)
    app.add_middleware(RequestLog)
    return app


class UnknownApiPath(BaseRoute):
    """Every /v1/ path that no other route knows: 404 with the OpenAI error body.

    BentoML hands a request to the mounted app only when one of the app's routes matches it, so
    without this route an unknown /v1 path would get BentoML's plain-text 404. A known path with
    another method still matches its own route partially, and gets the 405.
    """

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes  # the app's live route list, so that routes added later count

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # BentoML mounts the app at "/", so the scope's path is the request path.
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            return Match.NONE, {}
        known = any(
            route.matches(scope)[0] is not Match.NONE for route in self.routes if route is not self
        )
        return (Match.NONE if known else Match.FULL), {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The message OpenAI's API gives for an unknown path.
        raise ApiError(404, f"Invalid URL ({scope['method']} {scope['path']})")


def state(scope: Scope) -> dict[str, Any]:
    """Per-request values shared by middlewares and handlers (Starlette's request.state)."""
    return scope.setdefault("state", {})


class RequestId(HttpMiddleware):
    """Echo X-Request-ID when the client sent a sane one, else make one; on every response."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"")
        request_id = sent.decode("latin-1")
        if not (0 < len(request_id) <= MAX_REQUEST_ID_LENGTH and request_id.isprintable()):
            request_id = uuid.uuid4().hex
        state(scope)["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.lower().encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestLog(HttpMiddleware):
    """The JSON log line and the request counter, for every request the API app answers."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        response: dict[str, int] = {"status": 500, "bytes": 0}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
            elif message["type"] == "http.response.body":
                response["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except Exception as error:  # answered with a 500 by the app's outermost handler
            state(scope)["error"] = describe(error)
            raise
        finally:
            facts = state(scope)
            REQUESTS.labels(
                model=facts.get("model", "none"), status_code=str(response["status"])
            ).inc()
            client = scope.get("client")
            log_request(
                method=scope["method"],
                path=scope["path"],
                status=response["status"],
                latency_s=time.perf_counter() - started,
                headers={
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in scope["headers"]
                },
                client_ip=client[0] if client else None,
                response_bytes=response["bytes"],
                facts={
                    "version": release_version(),  # which release answered, during a canary
                    **{key: value for key, value in facts.items() if key in LOGGED_FACTS},
                },
            )


# Declares the bearer scheme in the OpenAPI document (as a route dependency); ApiKeyAuth below
# enforces it, before the body is read and on every /v1 path, known or not.
BEARER_AUTH = Security(
    HTTPBearer(
        auto_error=False,
        scheme_name="bearerAuth",
        description="An API key: `Authorization: Bearer <key>`.",
    )
)


class ApiKeyAuth(HttpMiddleware):
    """Bearer API keys on /v1/*; health, metrics and docs stay open."""

    def applies_to(self, scope: Scope) -> bool:
        return scope["path"].startswith(PROTECTED_PREFIX)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys: ApiKeys | None = scope["app"].state.api_keys
        if keys is None:  # auth explicitly disabled
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1") or None)
        key_id = keys.identify(token) if token else None
        if key_id is None:
            message = (
                "Incorrect API key provided."
                if token
                else "Missing API key: send 'Authorization: Bearer <key>'."
            )
            response = error_response(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        state(scope)["api_key_id"] = key_id
        await self.app(scope, receive, send)


class BodySizeLimit(HttpMiddleware):
    """413 for bodies over the limit, by Content-Length or by counting what actually arrives."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit: int = scope["app"].state.max_body_bytes
        too_large = ApiError(
            413, f"The request body is larger than {limit} bytes.", code="request_too_large"
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = error_response(too_large.status, too_large.message, code=too_large.code)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            """Raised inside the handler's body read, so the ApiError handler answers."""
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
            return message

        await self.app(scope, counting_receive, send)
