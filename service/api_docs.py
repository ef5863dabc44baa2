"""Interactive API docs at /docs (and / redirecting there), served by the service itself.

BentoML 1.4 serves a Swagger UI at / whose page loads a third-party tag manager, and describes the
API in /docs.json with its own name and contact. This page uses the Swagger UI files BentoML ships
(so nothing more to install or pin), and only those: every script and style comes from this
server, nothing from elsewhere. `API_INFO` is the project's description of the API; the release
middleware (service/release.py) writes it into /docs.json over BentoML's.
"""

from __future__ import annotations

from pathlib import Path

import bentoml._internal.server as bentoml_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.middleware import HttpMiddleware
from service.schemas import ErrorBody, ErrorDetail

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
OPENAPI_PATH = "/docs.json"
SWAGGER_UI_FILES = Path(bentoml_server.__file__).parent / "static_content"
SWAGGER_UI_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")
# The page's Content-Security-Policy: scripts, styles and the spec from this server only (Swagger
# UI sets inline styles and data: images, nothing else inline), no forms, no base, no framing.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# BentoML's own docs page assets and schema: this service serves its own (/docs, /docs.json).
HIDDEN_BENTOML_PREFIX = "/static_content/"
HIDDEN_BENTOML_PATHS = frozenset({"/schema.json"})

API_INFO = {
    "title": "Moderation API",
    "description": (
        "OpenAI-compatible text moderation: `POST /v1/moderations` classifies one text or a list "
        "of texts, `GET /v1/models` lists the loaded models. Every `/v1/` call needs "
        "`Authorization: Bearer <key>` (use **Authorize** above to try it here). Served by "
        "moderation-kit, a BentoML service deployed to GKE with Pulumi."
    ),
    "contact": {"name": "moderation-kit maintainers"},
    "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
}

# No inline script, so that the page also works under a `script-src 'self'` policy.
_INITIALIZER = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // else the page sends the spec address to validator.swagger.io
  }});
}};
"""
_PAGE = f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{API_INFO["title"]}</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" type="text/css" href="{ASSETS_PATH}/swagger-ui.css">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{ASSETS_PATH}/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="{ASSETS_PATH}/initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""


async def _home(_: Request) -> Response:
    return RedirectResponse(DOCS_PATH)


async def _page(_: Request) -> Response:
    return HTMLResponse(_PAGE)


async def _initializer(_: Request) -> Response:
    return Response(_INITIALIZER, media_type="text/javascript")


def _asset(name: str) -> Route:
    async def serve(_: Request) -> Response:
        return FileResponse(SWAGGER_UI_FILES / name)

    return Route(f"{ASSETS_PATH}/{name}", serve)


_DOCS_APP = Starlette(
    routes=[
        Route("/", _home),
        Route(DOCS_PATH, _page),
        Route(f"{ASSETS_PATH}/initializer.js", _initializer),
        *map(_asset, SWAGGER_UI_ASSETS),
    ]
)
_PATHS = frozenset(route.path for route in _DOCS_APP.routes)


class ApiDocs(HttpMiddleware):
    """ASGI middleware: answers the docs paths itself, ahead of BentoML's own index page, and
    BentoML's own docs assets and schema with a 404."""

    def applies_to(self, scope: Scope) -> bool:
        path = scope["path"]
        return (
            (path in _PATHS and scope["method"] in ("GET", "HEAD"))
            or path.startswith(HIDDEN_BENTOML_PREFIX)
            or path in HIDDEN_BENTOML_PATHS
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in _PATHS:
            await _DOCS_APP(scope, receive, send)
            return
        error = ErrorDetail(
            message="Not found.", type="invalid_request_error", param=None, code=None
        )
        await JSONResponse(ErrorBody(error=error).model_dump(), status_code=404)(
            scope, receive, send
        )
