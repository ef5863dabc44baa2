"""Prometheus metrics beyond BentoML's own; names are a contract with dashboards and alerts.

`moderation_requests_in_flight` (gauge, no labels) is the autoscaling signal: POST /v1/moderations
requests being answered by this pod now, summed over its worker processes. Unlike BentoML's
`bentoml_service_request_in_progress`, it leaves out probes, scrapes, /v1/models and the
front's internal calls to the scorer.

Every label value comes from the server's own vocabulary (route templates, status codes it sends,
catalog model names), never from what a client sends: BentoML's own HTTP metrics label the raw
request path, so they are switched off on the API service (service/app.py) and
`moderation_request_duration_seconds` {route, status_code} replaces them.

`moderation_category_score` (histogram) is what the model answered before any threshold: the
dashboard compares its distribution between release tracks (observed in service/backends.py).

`moderation_model_info` (gauge, 1) says which setting each model runs on this node and why: the
reason is one of a few fixed sentences built from the catalog and the CPU/GPU features, so its
values stay bounded.

`bentoml.metrics` is prometheus_client, created lazily so that BentoML's multiprocess collector
sees every worker's samples on /metrics.
"""

import os

import bentoml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

REQUESTS = bentoml.metrics.Counter(
    name="moderation_requests_total",
    documentation="API requests, by model and HTTP status code (499: the client went away).",
    labelnames=["model", "status_code"],
)
REQUEST_DURATION = bentoml.metrics.Histogram(
    name="moderation_request_duration_seconds",
    documentation="API request duration, by route template ('unknown' for others) and status code.",
    labelnames=["route", "status_code"],
    # BentoML's default duration buckets, so that latency SLO thresholds stay on a bucket bound.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
INFERENCE_LATENCY = bentoml.metrics.Histogram(
    name="moderation_inference_latency_seconds",
    documentation="Model forward-pass time for one batch, by model.",
    labelnames=["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FLAGGED = bentoml.metrics.Counter(
    name="moderation_flagged_total",
    documentation="Texts flagged, by model and category.",
    labelnames=["model", "category"],
)
INPUT_CHARS = bentoml.metrics.Histogram(
    name="moderation_input_chars",
    documentation="Characters of each text as it reaches the model (normalised, cut to the "
    "per-text limit), by model.",
    labelnames=["model"],
    buckets=(16, 64, 256, 1024, 4096, 16384, 65536),
)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="moderation_batch_size",
    documentation="Texts per model call of the in-process batcher, by model.",
    labelnames=["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
SCORES = bentoml.metrics.Histogram(
    name="moderation_category_score",
    documentation="Each text's score in each category its model scores, by model and category.",
    labelnames=["model", "category"],
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="moderation_model_info",
    documentation="1 per loaded model: the setting it runs (backend, precision, device) and why; "
    "fallback='true' when no validated setting is native on this node (service/hardware.py).",
    labelnames=["model", "backend", "precision", "device", "fallback", "reason"],
    multiprocess_mode="max",
)
REQUESTS_IN_FLIGHT = bentoml.metrics.Gauge(
    name="moderation_requests_in_flight",
    documentation="POST /v1/moderations requests being answered now (the autoscaling signal).",
    multiprocess_mode="livesum",
)


def exposition() -> bytes:
    """/metrics: every worker's samples (BentoML's multiprocess directory), else this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


REFUSED = bentoml.metrics.Counter(
    name="moderation_refused_requests_total",
    documentation="Requests refused before the API saw them (malformed, too large, too slow), "
    "by reason (service/http_protocol.py).",
    labelnames=["reason"],
)
