"""The HTTP API against one real `bentoml serve` process (see conftest.server)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.categories import CATEGORIES
from tests.fixtures.catalog import StoredModels
from tests.fixtures.http import assert_openai_error, log_line, metric_samples, metric_value
from tests.fixtures.servers import LIMITS, MAX_BODY_BYTES, RunningServer

pytestmark = pytest.mark.slow
MAX_INPUTS = int(LIMITS["MODERATION_MAX_INPUTS"])
MAX_CHARS = int(LIMITS["MODERATION_MAX_INPUT_CHARS"])


def openai_client(server: RunningServer, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=api_key or server.api_key, max_retries=0
    )


def moderate(server: RunningServer, payload: object, **headers: str) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/moderations", json=payload, headers=headers)


def assert_moderation_shape(result: dict) -> None:
    assert set(result["categories"]) == set(CATEGORIES)
    assert set(result["category_scores"]) == set(CATEGORIES)
    assert all(isinstance(flag, bool) for flag in result["categories"].values())
    assert all(0.0 <= score <= 1.0 for score in result["category_scores"].values())
    assert isinstance(result["flagged"], bool)


# --- the OpenAI shape --------------------------------------------------------------------------


def test_official_openai_client_works_unchanged(server: RunningServer) -> None:
    client = openai_client(server)
    texts = ["hello", "I will hurt you", "third"]
    response = client.moderations.create(model="tiny-koala", input=texts)
    assert response.id.startswith("modr-")
    assert response.model == "tiny-koala"
    assert len(response.results) == len(texts)
    first = response.results[0]
    assert isinstance(first.categories.self_harm_intent, bool)
    assert 0.0 <= first.category_scores.violence_graphic <= 1.0
    assert first.category_applied_input_types.violence == ["text"]

    default = client.moderations.create(input="have a nice day")
    assert default.model == "profanity-check"
    assert len(default.results) == 1


def test_openai_client_raises_its_typed_errors(server: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client(server).moderations.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError):
        openai_client(server).moderations.create(input=[])
    with pytest.raises(openai.AuthenticationError):
        openai_client(server, api_key="wrong").moderations.create(input="x")


@pytest.mark.parametrize("model", ["profanity-check", "tiny-koala", "tiny-toxic"])
def test_every_category_is_present_and_uncovered_ones_are_false_and_zero(
    server: RunningServer, model: str
) -> None:
    with server.client() as client:
        covered = {
            card["id"]: set(card["categories"]) for card in client.get("/v1/models").json()["data"]
        }[model]
    response = moderate(server, {"model": model, "input": ["fuck you idiot", "a calm sentence"]})
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        assert_moderation_shape(result)
        for category in set(CATEGORIES) - covered:
            assert result["categories"][category] is False
            assert result["category_scores"][category] == 0.0


def test_results_keep_input_order_and_match_single_requests(server: RunningServer) -> None:
    texts = ["first text", "second, different text", "3"]
    together = moderate(server, {"model": "tiny-koala", "input": texts}).json()["results"]
    for text, result in zip(texts, together, strict=True):
        alone = moderate(server, {"model": "tiny-koala", "input": text}).json()["results"][0]
        for category in CATEGORIES:
            assert result["category_scores"][category] == pytest.approx(
                alone["category_scores"][category], abs=1e-4
            )


def test_flags_follow_the_catalog_thresholds(server: RunningServer) -> None:
    texts = [f"sample number {index} with words" for index in range(MAX_INPUTS)]
    results = moderate(server, {"model": "tiny-koala", "input": texts}).json()["results"]
    # test catalog: self-harm at 0.3, every other covered category at 0.2
    for result in results:
        for category, score in result["category_scores"].items():
            threshold = 0.3 if category == "self-harm" else 0.2
            covered = category not in {
                "harassment/threatening",
                "illicit",
                "illicit/violent",
                "self-harm/instructions",
                "self-harm/intent",
            }
            assert result["categories"][category] == (covered and score >= threshold)
        assert result["flagged"] == any(result["categories"].values())


def test_openai_model_names_are_aliases_of_the_default(server: RunningServer) -> None:
    response = moderate(server, {"model": "omni-moderation-latest", "input": "hi"})
    assert response.json()["model"] == "profanity-check"


def test_models_lists_every_loaded_model_with_its_tag_and_the_default(
    server: RunningServer, stored_models: StoredModels
) -> None:
    with server.client() as client:
        listing = client.get("/v1/models").json()
    cards = {card["id"]: card for card in listing["data"]}
    assert {name: card["tag"] for name, card in cards.items()} == {
        "profanity-check": stored_models.default,
        "tiny-koala": stored_models.koala,
        "tiny-toxic": stored_models.toxic,
    }
    assert [name for name, card in cards.items() if card["default"]] == ["profanity-check"]
    assert {model.id for model in openai_client(server).models.list()} == set(cards)


# --- headers, health, docs, metrics -------------------------------------------------------------


def test_the_server_issues_its_own_request_id_and_logs_the_clients_beside_it(
    server: RunningServer,
) -> None:
    """A client-chosen X-Request-ID was echoed and logged as the request id, so clients could
    forge or collide the ids an operator searches by (issue 20, finding 10)."""
    client_id = f"client-{uuid.uuid4().hex}"
    with server.client() as client:
        sent = client.post(
            "/v1/moderations", json={"input": "x"}, headers={"X-Request-ID": client_id}
        )
        assert len(sent.headers["X-Request-ID"]) == 32 and sent.headers["X-Request-ID"] != client_id
        entry = log_entry(server, client_id)
        assert entry["request_id"] == sent.headers["X-Request-ID"]
        for response in (
            client.post("/v1/moderations", json={"input": "x"}),
            client.post("/v1/moderations", content=b"{"),
            client.get("/livez"),
            client.get("/metrics"),
        ):
            assert len(response.headers["X-Request-ID"]) == 32
        first, second = (client.get("/v1/models").headers["X-Request-ID"] for _ in range(2))
        assert first != second
        for unusable in ("x" * 129, "bad\tid"):  # too long, not printable: not logged
            response = client.get("/v1/models", headers={"X-Request-ID": unusable})
            assert len(response.headers["X-Request-ID"]) == 32
            assert unusable not in server.logs()


def test_health_endpoints_answer_without_an_api_key(server: RunningServer) -> None:
    with server.client(api_key=None) as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/docs.json").status_code == 200


def test_openapi_document_describes_the_api(server: RunningServer) -> None:
    with server.client() as client:
        spec = client.get("/docs.json").json()
    paths = spec["paths"]
    assert {"/v1/moderations", "/v1/models", "/livez", "/readyz", "/metrics"} <= set(paths)
    operation = paths["/v1/moderations"]["post"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["required"] == ["input"]
    one_text, texts = request_schema["properties"]["input"]["anyOf"]
    assert one_text["maxLength"] == texts["items"]["maxLength"] == MAX_CHARS  # this server's
    assert (texts["minItems"], texts["maxItems"]) == (1, MAX_INPUTS)
    assert set(operation["responses"]) == {
        "200",
        "400",
        "401",
        "404",
        "408",
        "413",
        "429",
        "500",
        "503",
        "504",
    }
    assert "ModerationResponse" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`.",
    }
    for path, method in (("/v1/moderations", "post"), ("/v1/models", "get")):
        responses = paths[path][method]["responses"]
        assert paths[path][method]["security"] == [{"bearerAuth": []}]
        for status in set(responses) - {"200"}:
            error_schema = responses[status]["content"]["application/json"]["schema"]
            assert error_schema == {"$ref": "#/components/schemas/ErrorBody"}
    assert "security" not in paths["/readyz"]["get"]


def test_metrics_count_requests_flags_lengths_and_inference(server: RunningServer) -> None:
    texts = [f"metrics sample {index} " * (index + 1) for index in range(MAX_INPUTS)]
    before = metric_samples(server)
    results = moderate(server, {"model": "tiny-koala", "input": texts}).json()["results"]
    after = metric_samples(server)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    model = {"model": "tiny-koala"}
    assert delta("moderation_requests_total", status_code="200", **model) == 1
    assert delta("moderation_input_chars_count", **model) == len(texts)
    assert delta("moderation_input_chars_sum", **model) == sum(map(len, texts))
    assert delta("moderation_inference_latency_seconds_count", **model) >= 1
    route = {"route": "/v1/moderations", "status_code": "200"}
    assert delta("moderation_request_duration_seconds_count", **route) == 1
    for category in CATEGORIES:
        flagged = sum(result["categories"][category] for result in results)
        assert delta("moderation_flagged_total", category=category, **model) == flagged
    assert delta("moderation_batch_size_count", **model) >= 1  # model calls of the batcher
    # BentoML's own HTTP metrics are off (raw-path labels); nothing else exports them now.
    assert not any(name.startswith("bentoml_service_") for name in after)


def test_in_flight_gauge_counts_only_moderation_requests_being_answered(
    server: RunningServer,
) -> None:
    """A request whose body is still arriving is in flight (the handler is reading it); other
    endpoints, answered meanwhile, are not counted."""
    in_flight = "moderation_requests_in_flight"
    body_sent, release = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b'{"model": "tiny-koala", '
        body_sent.set()
        release.wait(timeout=30)
        yield b'"input": "held back"}'

    with server.client() as client, ThreadPoolExecutor(max_workers=1) as pool:
        assert metric_value(metric_samples(server), in_flight) == 0
        held = pool.submit(client.post, "/v1/moderations", content=slow_body())
        try:
            assert body_sent.wait(timeout=30)
            deadline = time.monotonic() + 10
            while metric_value(metric_samples(server), in_flight) != 1:
                assert time.monotonic() < deadline, "the held request was never counted"
                time.sleep(0.05)
            assert client.get("/v1/models").status_code == 200
            assert client.post("/v1/moderations", json={"input": []}).status_code == 400
            assert client.get("/readyz").status_code == 200
            assert metric_value(metric_samples(server), in_flight) == 1
        finally:
            release.set()
        assert held.result(timeout=60).status_code == 200
    assert metric_value(metric_samples(server), in_flight) == 0


def batch_histogram(server: RunningServer) -> tuple[float, float]:
    """(model calls, model calls of more than one text) for tiny-koala."""
    samples = metric_samples(server)
    batches = sum(
        s.value for s in samples["moderation_batch_size_count"] if s.labels["model"] == "tiny-koala"
    )
    single = sum(
        s.value
        for s in samples["moderation_batch_size_bucket"]
        if s.labels["model"] == "tiny-koala" and s.labels["le"] == "1.0"
    )
    return batches, batches - single


def test_concurrent_requests_are_batched(server: RunningServer) -> None:
    batches_before, multi_before = batch_histogram(server)
    requests = 96
    with server.client() as client, ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(
            pool.map(
                lambda index: (
                    client.post(
                        "/v1/moderations", json={"model": "tiny-koala", "input": f"text {index}"}
                    ).status_code
                ),
                range(requests),
            )
        )
    assert statuses == [200] * requests
    batches_after, multi_after = batch_histogram(server)
    assert multi_after > multi_before, "no batch held more than one request"
    assert batches_after - batches_before < requests


# --- bad input: a clear 4xx with the OpenAI error body, never a 5xx ----------------------------


def test_body_over_the_size_limit_gets_413(server: RunningServer) -> None:
    oversized = json.dumps({"input": "z" * MAX_BODY_BYTES}).encode()
    with server.client() as client:
        declared = client.post("/v1/moderations", content=oversized)
        # streamed without Content-Length: the limit counts what arrives
        streamed = client.post(
            "/v1/moderations", content=iter([oversized[:1000], oversized[1000:]])
        )
    assert "content-length" not in streamed.request.headers
    for response in (declared, streamed):
        assert assert_openai_error(response, 413)["code"] == "request_too_large"


def test_openai_client_raises_not_found_for_an_unknown_api_path(server: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError, match="Invalid URL"):
        openai_client(server).embeddings.create(model="profanity-check", input="x")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
        min_size=1,
        max_size=3,
    ),
    model=st.sampled_from(["profanity-check", "tiny-koala"]),
)
def test_any_unicode_text_gets_a_well_formed_result(
    server: RunningServer, texts: list[str], model: str
) -> None:
    """Any Unicode text (control characters, emoji, empty strings): a result, never a 5xx.
    Lone surrogates are not Unicode text: see test_malformed_requests_get_400."""
    response = moderate(server, {"model": model, "input": texts})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(texts)
    for result in results:
        assert_moderation_shape(result)


# --- auth ---------------------------------------------------------------------------------------


# --- logs ---------------------------------------------------------------------------------------


def log_entry(server: RunningServer, client_request_id: str) -> dict:
    """The log line of the request the client sent with X-Request-ID `client_request_id`."""
    return log_line(server, "client_request_id", client_request_id)


def test_one_structured_log_line_per_request_in_cloud_logging_shape(server: RunningServer) -> None:
    request_id = uuid.uuid4().hex
    response = moderate(
        server,
        {"model": "tiny-koala", "input": ["abc", "de"]},
        **{
            "X-Request-ID": request_id,
            "X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1",
        },
    )
    entry = log_entry(server, request_id)
    lines = [line for line in server.logs().splitlines() if request_id in line]
    assert len(lines) == 1
    flagged = sum(result["flagged"] for result in response.json()["results"])
    assert entry["severity"] == "INFO"
    assert entry["httpRequest"]["status"] == 200
    assert entry["httpRequest"]["requestMethod"] == "POST"
    assert entry["httpRequest"]["latency"].endswith("s")
    assert entry["logging.googleapis.com/trace"].endswith("4bf92f3577b34da6a3ce929d0e0e4736")
    assert entry["model"] == "tiny-koala" and entry["model_tag"].startswith("tiny-koala:")
    assert (entry["inputs"], entry["input_chars"], entry["flagged"]) == (2, 5, flagged)
    assert entry["latency_ms"] > 0
    assert entry["version"] == response.headers["X-Moderation-Version"]
    assert len(entry["api_key_id"]) == 12


def test_input_text_never_reaches_the_logs(server: RunningServer) -> None:
    secret = f"SECRET-{uuid.uuid4().hex}"
    request_ids = []
    with server.client() as client, server.client(api_key="wrong") as unauthorized:
        for send in (
            lambda h: client.post("/v1/moderations", json={"input": [secret]}, headers=h),
            lambda h: client.post(
                "/v1/moderations", json={"model": "tiny-koala", "input": secret}, headers=h
            ),
            lambda h: client.post("/v1/moderations", json={"input": secret * 500}, headers=h),
            lambda h: client.post(
                "/v1/moderations", json={"model": secret, "input": secret}, headers=h
            ),
            lambda h: client.post("/v1/moderations", content=f'{{"input": "{secret}', headers=h),
            lambda h: client.post("/v1/moderations", json={"input": [secret, 3]}, headers=h),
            lambda h: unauthorized.post("/v1/moderations", json={"input": secret}, headers=h),
        ):
            request_id = uuid.uuid4().hex
            send({"X-Request-ID": request_id})
            request_ids.append(request_id)
    for request_id in request_ids:
        log_entry(server, request_id)  # every request was logged...
    assert secret not in server.logs()  # ...and none of them with its text
