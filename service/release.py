"""Which release answers: the app version and, when served from a Bento, the Bento version.

A rollout runs two Bentos side by side (stable and canary), so every response says which one
answered: the `X-Moderation-Version` header, the version fields of /v1/models, and
`info.version` of /docs.json all carry `<app version>+<bento version>` (semver build metadata);
served from source, where there is no Bento, just the app version.
"""

from __future__ import annotations

import json

import bentoml
from starlette.types import Message, Receive, Scope, Send

from service.api_docs import API_INFO, OPENAPI_PATH
from service.middleware import HttpMiddleware
from service.version import APP_VERSION

VERSION_HEADER = "X-Moderation-Version"
_NO_BENTO = ("", "not available")  # what BentoML's server context holds when serving source


def bento_tag() -> str | None:
    """`moderation:<version>` when served from a Bento (BentoML records it per worker)."""
    context = bentoml.server_context
    if context.bento_version in _NO_BENTO:
        return None
    return f"{context.bento_name}:{context.bento_version}"


def release_version() -> str:
    tag = bento_tag()
    return APP_VERSION if tag is None else f"{APP_VERSION}+{tag.partition(':')[2]}"


class ReleaseVersion(HttpMiddleware):
    """ASGI middleware: the version header on every response, the version in /docs.json.

    BentoML generates /docs.json itself (with only the Bento version, or "None" from source, and
    its own title and contact), so its `info` is rewritten on the way out: the project's
    `API_INFO` (service/api_docs.py) and this version.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = release_version()
        header = (VERSION_HEADER.encode(), version.encode())
        if scope["path"] != OPENAPI_PATH:

            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), header]}
                await send(message)

            await self.app(scope, receive, send_with_header)
            return

        start: Message = {}
        body = bytearray()

        async def send_rewritten_spec(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            content = bytes(body)
            if start["status"] == 200:
                spec = json.loads(content)
                spec["info"] = {**spec["info"], **API_INFO, "version": version}
                content = json.dumps(spec).encode()
            headers = [
                (name, value)
                for name, value in start.get("headers", [])
                if name.lower() != b"content-length"
            ]
            headers += [(b"content-length", str(len(content)).encode()), header]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, send_rewritten_spec)
