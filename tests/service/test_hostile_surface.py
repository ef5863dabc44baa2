"""What the server says and serves to a hostile client (issue 20, findings 9 and 10), against the
session's real `bentoml serve`: no value reflected in full, no page without a content policy,
none of BentoML's own docs files, no client-chosen address in the logs.
"""

from __future__ import annotations

import pytest

from tests.fixtures.http import assert_openai_error, log_line
from tests.fixtures.servers import RunningServer

pytestmark = pytest.mark.slow


def test_an_unknown_model_name_is_not_sent_back_in_full(server: RunningServer) -> None:
    """Finding 9: a 1.9 MB `model` came back in a 1.9 MB 404 body."""
    name = "m" * 60_000
    with server.client() as client:
        response = client.post("/v1/moderations", json={"input": "hello", "model": name})
    error = assert_openai_error(response, 404, param="model")
    assert len(response.content) < 1_000
    assert error["message"].startswith("The model `mmm")


def test_the_docs_page_has_a_content_policy_that_loads_only_from_this_server(
    server: RunningServer,
) -> None:
    """Finding 10: /docs had only `frame-ancestors` in its Content-Security-Policy."""
    with server.client() as client:
        docs = client.get("/docs")
        answer = client.get("/v1/models")
    assert docs.status_code == 200
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in docs.headers["Content-Security-Policy"].split(";")
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/static_content/swagger-ui.css", "/schema.json"])
def test_bentomls_own_docs_files_are_not_served(server: RunningServer, path: str) -> None:
    """Finding 10: BentoML's docs assets and schema were served beside the service's own."""
    with server.client(api_key=None) as client:
        response = client.get(path)
    assert_openai_error(response, 404)


def test_x_forwarded_for_from_a_local_peer_is_not_taken_as_the_client_address(
    server: RunningServer,
) -> None:
    """Finding 10: uvicorn trusts X-Forwarded-For from loopback peers, so any local process
    chose the `remoteIp` of its log lines."""
    with server.client() as client:
        response = client.get(
            "/v1/models", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "xff"}
        )
    entry = log_line(server, "request_id", response.headers["X-Request-ID"])
    assert entry["httpRequest"]["remoteIp"] == "127.0.0.1"
