"""The release version a response reports: app version alone from source, `+<bento version>` when
served from a Bento, in a header on every response and in /docs.json's info.version."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import bentoml
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from service.api_docs import API_INFO
from service.release import VERSION_HEADER, ReleaseVersion, bento_tag, release_version
from service.version import APP_VERSION


@pytest.fixture
def served_from_bento() -> Iterator[None]:
    """What BentoML's worker records when it serves `moderation:abc123`."""
    context = bentoml.server_context
    saved = context.bento_name, context.bento_version
    context.bento_name, context.bento_version = "moderation", "abc123"
    yield
    context.bento_name, context.bento_version = saved


def test_from_source_the_release_is_the_app_version() -> None:
    assert bentoml.server_context.bento_version == "not available"
    assert bento_tag() is None
    assert release_version() == APP_VERSION


@pytest.mark.usefixtures("served_from_bento")
def test_from_a_bento_the_release_carries_its_version() -> None:
    assert bento_tag() == "moderation:abc123"
    assert release_version() == f"{APP_VERSION}+abc123"


def _spec(_: Request) -> JSONResponse:
    return JSONResponse({"openapi": "3.0.2", "info": {"title": "moderation", "version": "None"}})


def _missing_spec(_: Request) -> PlainTextResponse:
    return PlainTextResponse("no spec", status_code=500)


def client_for(spec_endpoint: Callable[[Request], Response]) -> TestClient:
    app = Starlette(
        routes=[
            Route("/docs.json", spec_endpoint),
            Route("/livez", lambda _: PlainTextResponse("ok")),
        ]
    )
    return TestClient(ReleaseVersion(app))


@pytest.fixture
def client() -> TestClient:
    return client_for(_spec)


@pytest.mark.usefixtures("served_from_bento")
def test_every_response_names_the_release(client: TestClient) -> None:
    response = client.get("/livez")
    assert response.text == "ok"
    assert response.headers[VERSION_HEADER] == f"{APP_VERSION}+abc123"


@pytest.mark.usefixtures("served_from_bento")
def test_openapi_info_version_is_the_release(client: TestClient) -> None:
    response = client.get("/docs.json")
    assert response.json()["info"] == {**API_INFO, "version": f"{APP_VERSION}+abc123"}
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers[VERSION_HEADER] == f"{APP_VERSION}+abc123"


def test_a_failing_spec_passes_through_unchanged() -> None:
    response = client_for(_missing_spec).get("/docs.json")
    assert response.status_code == 500
    assert response.text == "no spec"
    assert response.headers[VERSION_HEADER] == APP_VERSION
