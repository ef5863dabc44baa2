"""RequestDeadline: a request the server cannot answer in time gets the OpenAI 504 from inside the
API app (logged and counted), not BentoML's bare 504 from outside it. In process: the API app of
service/api.py with a route that hangs."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient

from service.api import create_app


def hanging_app(request_timeout_s: float) -> TestClient:
    app = create_app()
    app.state.api_keys = None  # auth is not what is tested here
    app.state.key_rate_limiter = None
    app.state.max_body_bytes = 1024
    app.state.body_timeout_s = 10.0
    app.state.request_timeout_s = request_timeout_s

    @app.get("/v1/hang")
    async def hang() -> dict[str, str]:
        await asyncio.sleep(30)
        return {}

    @app.get("/v1/quick")
    async def quick() -> dict[str, str]:
        return {"answer": "in time"}

    return TestClient(app)


def test_a_request_over_the_deadline_gets_the_openai_504() -> None:
    with hanging_app(request_timeout_s=0.2) as client:
        started = time.monotonic()
        response = client.get("/v1/hang")
        assert time.monotonic() - started < 5
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "server_error"
        assert client.get("/v1/quick").json() == {"answer": "in time"}
