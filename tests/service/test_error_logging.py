"""Every 5xx the API app answers is logged with its cause: exception type and message, no input."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api import ApiError, create_app
from service.settings import Settings

SECRET_TEXT = "the user's private text"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))

    def about(self, path: str) -> list[dict]:
        return [line for line in self.lines if line["httpRequest"]["requestUrl"] == path]


@pytest.fixture
def request_log() -> Iterator[Lines]:
    """The JSON lines service/request_log.py writes, as they are written."""
    lines = Lines()
    logger = logging.getLogger("moderation.requests")
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)


def app_failing_with(error: Exception | None) -> TestClient:
    # auth disabled: the error comes from the route
    app = create_app(Settings(auth_disabled=True, request_timeout_s=0.2))

    @app.post("/v1/fail")
    async def fail() -> None:
        if error is None:
            await asyncio.sleep(30)  # past the request deadline
        raise error

    return TestClient(app, raise_server_exceptions=False)


def chained(cause: Exception, error: ApiError) -> ApiError:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "status", "cause"),
    [
        (RuntimeError("tensor shape mismatch"), 500, "RuntimeError: tensor shape mismatch"),
        (
            chained(ConnectionResetError("peer reset"), ApiError(503, "Not available; retry.")),
            503,
            "ConnectionResetError: peer reset",
        ),
        (ApiError(503, "The server is overloaded."), 503, "ApiError: The server is overloaded."),
        (None, 504, "TimeoutError: no answer within 0.2 s"),
    ],
    ids=["unexpected", "api-error-with-cause", "api-error", "deadline"],
)
def test_a_5xx_log_line_names_its_cause_and_never_the_input(
    request_log: Lines, error: Exception | None, status: int, cause: str
) -> None:
    with app_failing_with(error) as client:
        response = client.post("/v1/fail", json={"input": SECRET_TEXT})
    assert response.status_code == status
    assert response.json()["error"]["type"] == "server_error"
    (line,) = request_log.about("/v1/fail")
    assert line["severity"] == "ERROR"
    assert line["error"] == cause
    assert SECRET_TEXT not in json.dumps(line)


def test_a_4xx_log_line_has_no_error_field(request_log: Lines) -> None:
    with app_failing_with(ApiError(400, "bad input")) as client:
        assert client.post("/v1/fail", json={}).status_code == 400
    (line,) = request_log.about("/v1/fail")
    assert "error" not in line
