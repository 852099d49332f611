"""Prometheus metrics (``GET /metrics``): requests, the case path's stages, the analysis queue, the model.

Names (all prefixed ``dermalink_``):

* ``http_requests_total`` and ``http_request_duration_seconds`` by method, route template and status;
* ``case_stage_seconds{stage}``: where a submission's time goes, one observation per image or request:
  ``authenticate`` (the access token, its user and login; every authenticated request), ``checks``
  (a submission's reads before any image work: idempotency key, patient, consent, data key),
  ``intake`` (decode, limits, sanitising re-encode), ``quality``, ``preprocess`` (the model's 224×224
  input), ``encrypt_store`` (AES-GCM and the blob write), ``queue_wait`` (waiting for a batch),
  ``inference`` (one model call, per batch), ``heatmap`` (one image's class-activation overlay PNG,
  drawn on its first view: render, seal, write; not part of a submission), ``triage`` (results, triage
  and routing rows), ``insert`` (a submission's rows inserted, under SQLite's write lock), ``commit``;
* ``inference_batch_size``: images per model call;
* ``analysis_jobs{status}`` and ``analysis_oldest_due_job_age_seconds``: read from the database at scrape;
* ``model_info{name,version}``: the loaded model;
* ``errors_total{type}``: error responses by their ``type`` (``validation_error``, ``decompression_bomb``...);
* ``decode_pixels_in_use``: pixels being decoded now, against the decoding budget.

With ``dermalink serve --workers N`` each process writes its samples to ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` (answered by any one of them) adds them up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("dermalink_http_requests_total", "HTTP requests", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "dermalink_http_request_duration_seconds",
    "HTTP request latency (until the response is sent)",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "dermalink_case_stage_seconds", "Time in each stage of the case path", ["stage"], buckets=LATENCY_BUCKETS
)
GROUP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
BATCH_SIZE = Histogram("dermalink_inference_batch_size", "Images per model call", buckets=GROUP_BUCKETS)
COMMIT_GROUP = Histogram(
    "dermalink_commit_group_size", "Submissions per commit (group commit)", buckets=GROUP_BUCKETS
)
ERRORS = Counter("dermalink_errors_total", "Error responses by type", ["type"])
MODEL_INFO = Gauge(
    "dermalink_model_info", "The loaded model (value 1)", ["name", "version"], multiprocess_mode="max"
)
DECODE_PIXELS = Gauge(
    "dermalink_decode_pixels_in_use", "Pixels being decoded now", multiprocess_mode="livesum"
)
STAGES = (
    "authenticate",
    "checks",
    "intake",
    "quality",
    "preprocess",
    "encrypt_store",
    "queue_wait",
    "inference",
    "heatmap",
    "triage",
    "insert",
    "group_commit",
    "commit",
)


@contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(name).observe(time.perf_counter() - start)


def observe_stage(name: str, seconds: float) -> None:
    """A stage timed in pieces (intake: the decode, then the re-encode once the model is under way)."""
    STAGE_SECONDS.labels(name).observe(seconds)


def observe_commit_group(size: int, seconds: float) -> None:
    COMMIT_GROUP.observe(size)
    STAGE_SECONDS.labels("group_commit").observe(seconds)


def observe_batch(size: int, waited: float, seconds: float) -> None:
    BATCH_SIZE.observe(size)
    STAGE_SECONDS.labels("queue_wait").observe(waited)
    STAGE_SECONDS.labels("inference").observe(seconds)


class QueueCollector:
    """Analysis jobs by status and the age of the oldest due one, read from the database at each scrape."""

    def __init__(self, read: Callable[[], tuple[dict[str, int], float]]) -> None:
        self.read = read

    def describe(self):  # type: ignore[no-untyped-def]
        return []

    def collect(self):  # type: ignore[no-untyped-def]
        counts, oldest = self.read()
        jobs = GaugeMetricFamily("dermalink_analysis_jobs", "Analysis jobs by status", labels=["status"])
        for status in ("pending", "running", "done", "failed"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "dermalink_analysis_oldest_due_job_age_seconds",
            "Age of the oldest pending or running job (0 when none)",
            value=oldest,
        )


def exposition(extra: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The text format of every metric: this process's (or all workers' in multiprocess mode) plus ``extra``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if extra is not None:
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count and time every HTTP request by its route template (``/api/v1/cases/{case_id}``), not its path,
    so the number of series stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            labels = (scope["method"], template, str(status["code"]))
            REQUESTS.labels(*labels).inc()
            REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - start)
