"""The HTTP contract in process: validation, auth and the OpenAI error shapes, answered by the
service's own routes, moderation core and offline default model over its whole HTTP stack
(tests/fixtures/http.py), no `bentoml serve` needed. What needs a real process (bodies arriving
over a socket, BentoML's routes, logs, the official client) is in test_api.py and test_security.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.auth import hash_key
from tests.fixtures.catalog import StoredModels
from tests.fixtures.http import InProcessService, assert_openai_error, in_process_service
from tests.fixtures.servers import API_KEYS, LIMITS, MAX_BODY_BYTES

MAX_INPUTS = int(LIMITS["MODERATION_MAX_INPUTS"])
MAX_CHARS = int(LIMITS["MODERATION_MAX_INPUT_CHARS"])


@pytest.fixture(scope="module")
def service(stored_models: StoredModels) -> Iterator[InProcessService]:
    """The session server's settings and keys, with the shipped catalog (the offline default)."""
    env = {
        **LIMITS,
        "MODERATION_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MODERATION_API_KEY_HASHES": ",".join(hash_key(key) for key in API_KEYS),
    }
    with in_process_service(env, api_key=API_KEYS[0]) as running:
        yield running


def moderate(service: InProcessService, payload: object) -> httpx.Response:
    with service.client() as client:
        return client.post("/v1/moderations", json=payload)


# --- bad input: a clear 4xx with the OpenAI error body, never a 5xx ----------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"input": "unterminated', None),
        (b"\xff\xfe{not even utf-8", None),
        (b'{"input": "\xff\xfe"}', None),
        (b'{"input": "lone \\ud800 surrogate"}', None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"just a string"', None),
        (b"{}", "input"),
        (b'{"model": "tiny-koala"}', "input"),
        (b'{"input": []}', "input"),
        (b'{"input": ["fine", 1]}', "input"),
        (b'{"input": [null]}', "input"),
        (b'{"input": 5}', "input"),
        (b'{"input": {"type": "text", "text": "x"}}', "input"),
        (b'{"input": "x", "model": 7}', "model"),
    ],
)
def test_malformed_requests_get_400(
    service: InProcessService, body: bytes, param: str | None
) -> None:
    with service.client() as client:
        response = client.post(
            "/v1/moderations", content=body, headers={"Content-Type": "application/json"}
        )
    assert_openai_error(response, 400, param)


def test_too_many_inputs_gets_400(service: InProcessService) -> None:
    error = assert_openai_error(
        moderate(service, {"input": ["x"] * (MAX_INPUTS + 1)}), 400, "input"
    )
    assert error["code"] == "too_many_inputs"
    assert moderate(service, {"input": ["x"] * MAX_INPUTS}).status_code == 200


def test_text_over_the_character_limit_gets_400(service: InProcessService) -> None:
    error = assert_openai_error(moderate(service, {"input": ["ok", "y" * (MAX_CHARS + 1)]}), 400)
    assert error["code"] == "input_too_long"
    assert moderate(service, {"input": "y" * MAX_CHARS}).status_code == 200


def test_unknown_model_gets_404(service: InProcessService) -> None:
    error = assert_openai_error(moderate(service, {"model": "gpt-9", "input": "x"}), 404, "model")
    assert error["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/moderations"), ("PUT", "/v1/moderations"), ("POST", "/v1/models")],
)
def test_wrong_method_gets_405(service: InProcessService, method: str, path: str) -> None:
    with service.client() as client:
        assert_openai_error(client.request(method, path), 405)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/moderations/extra"),
        ("DELETE", "/v1/"),
        ("GET", "/v1/x/y"),
    ],
)
def test_unknown_api_path_gets_404(service: InProcessService, method: str, path: str) -> None:
    with service.client() as client:
        error = assert_openai_error(client.request(method, path), 404)
    assert error["message"] == f"Invalid URL ({method} {path})"
    with service.client(api_key=None) as client:  # which paths exist is not told without a key
        assert_openai_error(client.request(method, path), 401)


def test_curl_style_form_content_type_is_read_as_json(service: InProcessService) -> None:
    # `curl -d '{...}'` sends application/x-www-form-urlencoded; the OpenAI API accepts it.
    with service.client() as client:
        response = client.post(
            "/v1/moderations",
            content=b'{"input": "hello"}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic dGVzdA==", f"Bearer {API_KEYS[0]}x", "Bearer"],
)
def test_requests_without_a_valid_key_get_401(
    service: InProcessService, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with service.client(api_key=None) as client:
        for response in (
            client.post("/v1/moderations", json={"input": "x"}, headers=headers),
            client.get("/v1/models", headers=headers),
            client.post("/v1/moderations", content=b"{bad json", headers=headers),
        ):
            assert assert_openai_error(response, 401)["code"] == "invalid_api_key"
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_every_configured_key_works(service: InProcessService) -> None:
    for key in API_KEYS:
        with service.client(api_key=key) as client:
            assert client.post("/v1/moderations", json={"input": "x"}).status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "Bearer   "])
def test_every_rfc_spelling_of_the_scheme_is_accepted(
    service: InProcessService, scheme: str
) -> None:
    with service.client(api_key=None) as client:
        response = client.get("/v1/models", headers={"Authorization": f"{scheme} {API_KEYS[0]}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "value",
    [f"Bearer\t{API_KEYS[0]}", f"Bearer {API_KEYS[0]} extra", f"Bearer {API_KEYS[0]},x=1"],
    ids=["tab", "trailing-word", "trailing-param"],
)
def test_authorization_outside_the_bearer_syntax_is_refused(
    service: InProcessService, value: str
) -> None:
    with service.client(api_key=None) as client:
        response = client.get("/v1/models", headers={"Authorization": value})
    assert_openai_error(response, 401)


def test_duplicate_authorization_headers_are_refused(service: InProcessService) -> None:
    with service.client(api_key=None) as client:
        response = client.get(
            "/v1/models",
            headers=[("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {API_KEYS[0]}")],
        )
    assert_openai_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": "you are an idiot", "input": "hello"}',
        b'{"input": "x", "model": "a", "model": "b"}',
    ],
    ids=["input", "model"],
)
def test_duplicate_json_keys_are_refused(service: InProcessService, body: bytes) -> None:
    with service.client() as client:
        response = client.post(
            "/v1/moderations", content=body, headers={"Content-Type": "application/json"}
        )
    assert_openai_error(response, 400)
    assert response.json()["error"]["code"] == "duplicate_key"
