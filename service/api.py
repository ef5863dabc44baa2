"""The HTTP layer: FastAPI app, OpenAI error bodies, and the per-request middlewares.

Routes are methods of the `Moderation` service (service/app.py); this module holds what wraps
them, so every error, including ones raised before a route runs, has the OpenAI error body.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from enum import Enum
from typing import Any

import anyio
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api_docs import API_INFO, ApiDocs
from service.auth import bearer_token, configured_api_keys
from service.deadline import Deadline
from service.metrics import REQUEST_DURATION, REQUESTS, exposition
from service.middleware import HttpMiddleware
from service.rate_limit import KeyRateLimiter, retry_after
from service.release import ReleaseVersion, release_version
from service.request_log import bounded, log_request
from service.schemas import ErrorBody, ErrorDetail, ModerationRequest
from service.settings import Settings
from service.version import APP_VERSION

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
PROTECTED_PREFIX = "/v1/"
# nginx's status for "the client closed the connection before the answer": not a server error.
CLIENT_CLOSED_REQUEST = 499
UNKNOWN_ROUTE = "unknown"
METRICS_PATH = "/metrics"
# Bodies up to this size are parsed on the event loop (under a millisecond); larger ones in a
# worker thread, one at a time, so that they cannot hold up other requests for long.
INLINE_PARSE_BYTES = 16 * 1024
# On every response (OWASP REST Security cheat sheet): API answers are not to be sniffed, cached,
# framed or sent on as referrers.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
}
_SECURITY = {name.lower().encode() for name in SECURITY_HEADERS}
_SECURITY_HEADER_ITEMS = [
    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
]

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


def create_app(settings: Settings) -> FastAPI:
    """The API app: its middlewares (the `Wraps.API` part of `http_stack`) and errors that all
    carry the OpenAI error body. The routes are the service's methods (service/app.py)."""
    app = FastAPI(
        middleware=[middleware for wraps, middleware in http_stack(settings) if wraps is Wraps.API],
        # A slash redirect would be built from the client's Host header (open redirect).
        redirect_slashes=False,
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

    @app.exception_handler(ClientDisconnect)
    async def _client_went_away(_: Request, __: ClientDisconnect) -> JSONResponse:
        # Nobody reads it; it gives the log line and the metrics the client's status, not a 500.
        return error_response(CLIENT_CLOSED_REQUEST, "The client closed the request.")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, __: Exception) -> JSONResponse:
        # Starlette answers this one outside every middleware: RequestLog has logged its cause.
        return error_response(500, "The server had an error processing the request.")

    @app.get(METRICS_PATH, include_in_schema=False)
    async def _metrics() -> Response:
        """Prometheus exposition; BentoML's own /metrics is off with its raw-path metrics."""
        content = await anyio.to_thread.run_sync(exposition)
        return Response(content, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.router.routes.append(UnknownApiPath(app.router.routes))
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
        raise ApiError(404, unknown_path_message(scope))


def unknown_path_message(scope: Scope) -> str:
    """The message OpenAI's API gives for an unknown path (method and path bounded here)."""
    return f"Invalid URL ({bounded(scope['method'])} {bounded(scope['path'])})"


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
    """The JSON log line and the request metrics, for every request the API app answers but the
    scrapes of its /metrics (like BentoML's probes, not logged)."""

    def applies_to(self, scope: Scope) -> bool:
        return scope["path"] != METRICS_PATH

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
            latency_s = time.perf_counter() - started
            status_code = str(response["status"])
            REQUESTS.labels(model=facts.get("model", "none"), status_code=status_code).inc()
            REQUEST_DURATION.labels(route=route_template(scope), status_code=status_code).observe(
                latency_s
            )
            client = scope.get("client")
            log_request(
                method=scope["method"],
                path=scope["path"],
                status=response["status"],
                latency_s=latency_s,
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


def route_template(scope: Scope) -> str:
    """The matched route's path template, never the request path: a bounded metric label."""
    route = scope.get("route")
    return route.path if isinstance(route, APIRoute) else UNKNOWN_ROUTE


class RequestDeadline(HttpMiddleware):
    """504 with the OpenAI body once a request has taken `request_timeout_s`, before BentoML's own
    traffic timeout would answer a bare 504 from outside the app (no body, no X-Request-ID)."""

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        super().__init__(app)
        self.timeout_s = timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        timeout_s = self.timeout_s
        try:
            async with Deadline(timeout_s) as deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if not deadline.expired or started:
                raise
            state(scope)["error"] = f"TimeoutError: no answer within {timeout_s} s"
            response = error_response(504, "The server did not answer in time; retry.")
            await response(scope, receive, send)


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
    """Bearer API keys on /v1/*, then the per-key rate limit; health, metrics and docs stay open.

    One `Authorization` header, exactly `Bearer <token>` (service/auth.py); a second one is
    refused rather than guessed at (proxies and frameworks disagree on which one wins).
    Starlette builds the stack in the serving worker, on its first request: a Bento builds and
    documents its API without keys; `bentoml serve` refuses to start without them (service/app.py).
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        super().__init__(app)
        self.keys = configured_api_keys(
            auth_disabled=settings.auth_disabled, hashes=settings.api_key_hashes
        )
        self.limiter = (
            KeyRateLimiter(settings.key_requests_per_minute, settings.key_burst)
            if settings.key_requests_per_minute
            else None
        )

    def applies_to(self, scope: Scope) -> bool:
        return scope["path"].startswith(PROTECTED_PREFIX)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.keys
        if keys is None:  # auth explicitly disabled
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope["headers"] if name.lower() == b"authorization"]
        if len(values) > 1:
            response = error_response(
                400, "Send one Authorization header, not several.", code="invalid_request"
            )
            await response(scope, receive, send)
            return
        token = bearer_token(values[0].decode("latin-1") if values else None)
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
        limiter = self.limiter
        wait_s = limiter.acquire(key_id) if limiter is not None else None
        if wait_s is not None:
            response = error_response(
                429,
                "Rate limit reached for this API key; retry after the time in Retry-After.",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after(wait_s)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodySizeLimit(HttpMiddleware):
    """413 for bodies over the limit, by Content-Length or by counting what actually arrives; 408
    for a body that does not arrive in time (the client's fault, so not a 5xx)."""

    def __init__(self, app: ASGIApp, *, limit: int, timeout_s: float) -> None:
        super().__init__(app)
        self.limit, self.timeout_s = limit, timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit, timeout_s = self.limit, self.timeout_s
        too_large = ApiError(
            413, f"The request body is larger than {limit} bytes.", code="request_too_large"
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = error_response(too_large.status, too_large.message, code=too_large.code)
            await response(scope, receive, send)
            return
        received = 0
        body_done = False
        body_due = time.monotonic() + timeout_s

        async def counting_receive() -> Message:
            """Raised inside the handler's body read, so the ApiError handler answers."""
            nonlocal received, body_done
            if body_done:  # later reads wait for the disconnect: no deadline
                return await receive()
            try:
                async with Deadline(body_due - time.monotonic()):
                    message = await receive()
            except TimeoutError:
                raise ApiError(
                    408, f"The request body did not arrive within {timeout_s:g} s.", code="timeout"
                ) from None
            received += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if received > limit:
                raise too_large
            return message

        await self.app(scope, counting_receive, send)


class HardenedResponses(HttpMiddleware):
    """SECURITY_HEADERS on every response of the service, BentoML's own routes included, and no
    redirect to another host: Starlette's slash redirects build an absolute Location from the
    client's Host header, so such a redirect is answered with the 404 of an unknown path instead
    (relative ones, like / -> /docs, stay)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    item for item in message.get("headers", []) if item[0].lower() not in _SECURITY
                ]
                message = {**message, "headers": kept + _SECURITY_HEADER_ITEMS}
            await send(message)

        redirect = False

        async def send_without_redirects(message: Message) -> None:
            nonlocal redirect
            if message["type"] == "http.response.start" and _redirects_elsewhere(message):
                redirect = True  # its body is dropped too
                not_found = error_response(404, unknown_path_message(scope))
                await not_found(scope, receive, send_with_headers)
            elif not redirect:
                await send_with_headers(message)

        await self.app(scope, receive, send_without_redirects)


def _redirects_elsewhere(start: Message) -> bool:
    """A redirect whose Location names a host (`scheme://host/...` or `//host/...`)."""
    if not 300 <= start["status"] < 400:
        return False
    locations = [value for name, value in start.get("headers", []) if name.lower() == b"location"]
    return any(b"://" in location or location.startswith(b"//") for location in locations)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a key given twice is an error, not "the last one wins"."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ApiError(
                400,
                f"The request body has the key '{bounded(key, 64)}' more than once.",
                param=bounded(key, 64),
                code="duplicate_key",
            )
        document[key] = value
    return document


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def check_limits(texts: object, *, max_inputs: int, max_input_chars: int) -> None:
    """Item count and text length of `input`, on the decoded JSON and before model validation."""
    items = texts if isinstance(texts, list) else [texts]
    if isinstance(texts, list) and not texts:
        raise ApiError(400, "'input' must not be empty.", param="input", code="invalid_value")
    if len(items) > max_inputs:
        raise ApiError(
            400,
            f"'input' has {len(items)} items; at most {max_inputs} are allowed.",
            param="input",
            code="too_many_inputs",
        )
    longest = max((len(item) for item in items if isinstance(item, str)), default=0)
    if longest > max_input_chars:
        raise ApiError(
            400,
            f"An input has {longest} characters; at most {max_input_chars} are allowed.",
            param="input",
            code="input_too_long",
        )


def parse_moderation_request(
    raw: bytes, *, max_inputs: int, max_input_chars: int
) -> ModerationRequest:
    """UTF-8 JSON with unique keys, then the limits, then the schema: the cheap checks first."""
    invalid = ApiError(400, "The request body is not valid JSON.", code="invalid_value")
    try:
        document = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_reject_constant
        )
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise invalid from None
    if isinstance(document, dict) and "input" in document:
        texts = document["input"]
        check_limits(texts, max_inputs=max_inputs, max_input_chars=max_input_chars)
        strings = [
            text
            for text in (*(texts if isinstance(texts, list) else [texts]), document.get("model"))
            if isinstance(text, str)
        ]
        # JSON may escape lone UTF-16 surrogates (\\ud800): not Unicode text, so not valid JSON.
        if not all(text.isascii() or _is_unicode(text) for text in strings):
            raise invalid
    return ModerationRequest.model_validate(document)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _large_body_parser() -> anyio.CapacityLimiter:
    """Made on first use, inside the worker's event loop."""
    return anyio.CapacityLimiter(1)


async def read_moderation_request(
    request: Request, *, max_inputs: int, max_input_chars: int
) -> ModerationRequest:
    """The request body, parsed; large bodies off the event loop, one at a time."""
    raw = await request.body()
    parse = functools.partial(
        parse_moderation_request, raw, max_inputs=max_inputs, max_input_chars=max_input_chars
    )
    if len(raw) <= INLINE_PARSE_BYTES:
        return parse()
    return await anyio.to_thread.run_sync(parse, limiter=_large_body_parser())


class Wraps(Enum):
    """What a middleware of the stack wraps."""

    SERVER = "every response of the server, BentoML's /livez, /readyz and /docs.json included"
    API = "the API app's routes only, inside BentoML's own middlewares"


def http_stack(settings: Settings) -> list[tuple[Wraps, Middleware]]:
    """The whole HTTP stack, outermost first: the one place that orders it.

    The SERVER part is added to the BentoML service (service/app.py), the API part to the API app
    (`create_app`); BentoML's own middlewares (traffic timeout, tracing context) run between them.
    """
    return [
        (Wraps.SERVER, Middleware(RequestId)),
        (Wraps.SERVER, Middleware(ReleaseVersion)),
        (Wraps.SERVER, Middleware(HardenedResponses)),
        (Wraps.SERVER, Middleware(ApiDocs)),
        (Wraps.API, Middleware(RequestLog)),
        (Wraps.API, Middleware(RequestDeadline, timeout_s=settings.request_timeout_s)),
        (Wraps.API, Middleware(ApiKeyAuth, settings=settings)),
        (
            Wraps.API,
            Middleware(
                BodySizeLimit, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s
            ),
        ),
    ]
