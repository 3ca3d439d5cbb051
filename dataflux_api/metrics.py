"""Prometheus metrics of one app: requests and latency per route, and library gauges computed at scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from dataflux_api.errors import DataFluxError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LibraryCollector:
    """Assets by status, segments by type and the processing queue depth, read from the catalog per scrape."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def describe(self) -> Iterator[Metric]:
        # Declared without samples so registering the collector does not read the catalog.
        yield GaugeMetricFamily("dataflux_assets", "Assets in the catalog by status", labels=["status"])
        yield GaugeMetricFamily("dataflux_segments", "Segments by segment type", labels=["segment_type"])
        yield GaugeMetricFamily("dataflux_queue_depth", "Assets queued or processing")

    def collect(self) -> Iterator[Metric]:
        counts = self.service.counts()
        assets = GaugeMetricFamily("dataflux_assets", "Assets in the catalog by status", labels=["status"])
        for status, n in sorted(counts["assets"]["by_status"].items()):
            assets.add_metric([status], n)
        yield assets
        segments = GaugeMetricFamily("dataflux_segments", "Segments by segment type", labels=["segment_type"])
        for kind, n in sorted(counts["segments"]["by_type"].items()):
            segments.add_metric([kind], n)
        yield segments
        yield GaugeMetricFamily(
            "dataflux_queue_depth", "Assets queued or processing", value=counts["queue_depth"]
        )


class Metrics:
    """A registry per app (tests build many apps), the request instruments and the ASGI middleware."""

    def __init__(self, service: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dataflux_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dataflux_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(LibraryCollector(service))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = {"code": 500}

            async def send_and_record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            started = time.perf_counter()
            try:
                await app(scope, receive, send_and_record)
            except Exception as exc:
                # Raised by the auth middleware; the app's exception handlers answer it further out.
                status["code"] = (
                    exc.status if isinstance(exc, DataFluxError) else getattr(exc, "status_code", 500)
                )
                raise
            finally:
                # The route template, not the raw path, keeps label cardinality bounded.
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                self.requests.labels(route, method, str(status["code"])).inc()
                self.latency.labels(route, method).observe(time.perf_counter() - started)

        return measured
