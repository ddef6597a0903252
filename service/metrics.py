"""Prometheus metrics on a per-app `CollectorRegistry` (so apps in tests never collide).

Requests by route template and status, latency histograms, queue depth, merged batch sizes
(rows and requests per forward pass), inference time, rejections and loaded models.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """Every metric the service exports, registered on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mmvae_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "mmvae_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "mmvae_queue_depth", "requests waiting for a forward pass", ["model", "op"], registry=r
        )
        self.batch_rows = Histogram(
            "mmvae_batch_rows",
            "samples per forward pass",
            ["model", "op"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "mmvae_batch_requests",
            "requests merged into one forward pass",
            ["model", "op"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "mmvae_inference_seconds",
            "forward-pass time",
            ["model", "op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "mmvae_rejected_requests", "requests refused: queue full", ["model", "op"], registry=r
        )
        self.models_loaded = Gauge("mmvae_models_loaded", "models being served", registry=r)
        self.model_info = Gauge(
            "mmvae_model_loaded", "1 per model being served", ["model", "model_type"], registry=r
        )

        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (label children looked up once per
        method, route and status: `labels()` takes a lock and builds tuples every call)."""
        key = (method, route, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def remove_series(self, model: str, op: str) -> None:
        """Forget one (model, op)'s series, so unloaded models do not grow /metrics forever."""
        for metric in (
            self.queue_depth,
            self.batch_rows,
            self.batch_requests,
            self.inference_seconds,
            self.rejected,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(model, op)

    def render(self) -> bytes:
        return generate_latest(self.registry)
