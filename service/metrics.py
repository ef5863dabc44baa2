"""Prometheus metrics beyond BentoML's own; names are a contract with dashboards and alerts.

`moderation_requests_in_flight` (gauge, no labels) is the autoscaling signal: POST /v1/moderations
requests being answered by this pod now, summed over its worker processes. Unlike BentoML's
`bentoml_service_request_in_progress`, it leaves out probes, scrapes, /v1/models and the
front's internal calls to the scorer.

`bentoml.metrics` is prometheus_client, created lazily so that BentoML's multiprocess collector
sees every worker's samples on /metrics.
"""

import bentoml

REQUESTS = bentoml.metrics.Counter(
    name="moderation_requests_total",
    documentation="Moderation API requests, by model and HTTP status code.",
    labelnames=["model", "status_code"],
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
    documentation="Length of each input text in characters, by model.",
    labelnames=["model"],
    buckets=(16, 64, 256, 1024, 4096, 16384, 65536),
)
BATCH_SIZE = bentoml.metrics.Histogram(
    name="moderation_batch_size",
    documentation="Texts per model call of the in-process batcher, by model.",
    labelnames=["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
REQUESTS_IN_FLIGHT = bentoml.metrics.Gauge(
    name="moderation_requests_in_flight",
    documentation="POST /v1/moderations requests being answered now (the autoscaling signal).",
    multiprocess_mode="livesum",
)
