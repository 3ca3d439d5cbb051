"""Prometheus metrics of one app (the REST API or the MCP server): requests and latency per route,
library and operations gauges computed at scrape, and the process's model timings.

The Dagster code location exports its own families (runs, daemons, stage durations) from
`dataflux_pipelines/orchestration/metrics.py`; `deployment/grafana/` draws both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dataflux_api.errors import DataFluxError
from dataflux_pipelines import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# Every family the collector exports, declared once: (name, help, labels, kind).
_FAMILIES: list[tuple[str, str, list[str] | None, str]] = [
    ("dataflux_assets", "Assets in the catalog by status", ["status"], "gauge"),
    ("dataflux_failed_assets", "Failed assets by reason code", ["reason_code"], "gauge"),
    ("dataflux_segments", "Segments by segment type", ["segment_type"], "gauge"),
    ("dataflux_queue_depth", "Assets queued or processing", None, "gauge"),
    ("dataflux_oldest_waiting_seconds", "Age of the oldest asset still queued or processing", None, "gauge"),
    ("dataflux_data_disk_free_bytes", "Free bytes on the filesystem of DATAFLUX_HOME", None, "gauge"),
    ("dataflux_data_disk_size_bytes", "Size of the filesystem of DATAFLUX_HOME", None, "gauge"),
    ("dataflux_model_load_seconds", "Seconds this process took to load each model", ["model"], "gauge"),
    ("dataflux_model_inference_calls", "Inference calls by model in this process", ["model"], "counter"),
    ("dataflux_model_inference_items", "Inputs embedded or transcribed by model", ["model"], "counter"),
    ("dataflux_model_inference_seconds", "Seconds spent in inference by model", ["model"], "counter"),
]


class LibraryCollector:
    """Library and operations gauges read from the catalog per scrape: assets by status and failure
    reason, segments by type, queue depth and the oldest waiting file, free disk, model timings."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def _families(self) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        return {
            name: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, doc, labels=labels)
            for name, doc, labels, kind in _FAMILIES
        }

    def describe(self) -> Iterator[Metric]:
        # Declared without samples so registering the collector does not read the catalog.
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        counts = self.service.counts()
        ops = self.service.operations()
        f = self._families()
        for status, n in sorted(counts["assets"]["by_status"].items()):
            f["dataflux_assets"].add_metric([status], n)
        for reason, n in sorted(ops["failed_by_reason"].items()):
            f["dataflux_failed_assets"].add_metric([reason], n)
        for kind, n in sorted(counts["segments"]["by_type"].items()):
            f["dataflux_segments"].add_metric([kind], n)
        f["dataflux_queue_depth"].add_metric([], counts["queue_depth"])
        f["dataflux_oldest_waiting_seconds"].add_metric([], ops["oldest_waiting_seconds"])
        f["dataflux_data_disk_free_bytes"].add_metric([], ops["disk"]["free_bytes"])
        f["dataflux_data_disk_size_bytes"].add_metric([], ops["disk"]["total_bytes"])
        for model, timing in ops["models"].items():
            f["dataflux_model_load_seconds"].add_metric([model], timing["load_seconds"])
            f["dataflux_model_inference_calls"].add_metric([model], timing["calls"])
            f["dataflux_model_inference_items"].add_metric([model], timing["items"])
            f["dataflux_model_inference_seconds"].add_metric([model], timing["seconds"])
        yield from f.values()


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
        Info("dataflux_build", "DataFlux version", registry=self.registry).info({"version": __version__})
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


def serve_metrics(app: Any, metrics: Metrics) -> ASGIApp:
    """`GET /metrics` beside another ASGI app (the MCP server), with its requests measured too.

    Sits inside `PolicyGuard`: the principal it set must hold `admin`, as on the REST API."""
    from dataflux_api.policy import principal_of

    async def endpoint(scope: Any, receive: Receive, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            principal = principal_of(scope)
            if principal is not None and not principal.allows("admin"):
                status, body, ctype = 403, b'{"error":"missing_permission","detail":"needs admin"}', None
            elif scope["method"] not in ("GET", "HEAD"):
                status, body, ctype = 405, b'{"error":"method_not_allowed"}', None
            else:
                status, body, ctype = 200, metrics.render(), CONTENT_TYPE
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", (ctype or "application/json").encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
            return
        if scope["type"] == "http":
            # No router template on this side: the path itself is bounded (/mcp and little else).
            scope.setdefault("path_template", scope["path"] if scope["path"] == "/mcp" else "other")
        await app(scope, receive, send)

    return metrics.middleware(endpoint)
