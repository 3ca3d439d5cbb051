"""Prometheus metrics of the Dagster code location: runs by status, daemon heartbeats and the
per-stage durations of recent files, read from the Dagster instance at each scrape.

Runs execute in worker processes that come and go, so nothing is counted in memory here: the event
log is the record (each stage's materialization carries its `seconds`), and a scrape summarises the
most recent `RECENT_PER_STAGE` of them. The code location serves this on
`DATAFLUX_DAGSTER_METRICS_PORT` (0 = off); `deployment/prometheus/prometheus.yml` scrapes it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from dataflux_pipelines.pipeline import STAGES

log = logging.getLogger(__name__)

RECENT_PER_STAGE = 200
_WATCHED = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)


class DagsterCollector:
    """Families read from one Dagster instance per scrape."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "runs": GaugeMetricFamily("dataflux_dagster_runs", "Dagster runs by status", labels=["status"]),
            "heartbeat": GaugeMetricFamily(
                "dataflux_dagster_daemon_heartbeat_age_seconds",
                "Seconds since each Dagster daemon last reported a heartbeat",
                labels=["daemon"],
            ),
            "stage": GaugeMetricFamily(
                "dataflux_stage_seconds",
                f"Per-file stage duration over the last {RECENT_PER_STAGE} materializations per stage",
                labels=["stage", "quantile"],
            ),
            "stage_files": GaugeMetricFamily(
                "dataflux_stage_recent_files",
                "Materializations the stage duration quantiles summarise",
                labels=["stage"],
            ),
            "up": GaugeMetricFamily("dataflux_dagster_instance_up", "1 when the Dagster instance answered"),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        try:
            for status in _WATCHED:
                count = self.instance.get_runs_count(dg.RunsFilter(statuses=[status]))
                f["runs"].add_metric([status.value], count)
            now = time.time()
            for daemon, beat in sorted(self.instance.get_daemon_heartbeats().items()):
                f["heartbeat"].add_metric([daemon], max(0.0, now - beat.timestamp))
            for stage, seconds in stage_durations(self.instance).items():
                f["stage_files"].add_metric([stage], len(seconds))
                if seconds:
                    values = np.asarray(seconds, dtype=np.float64)
                    for q in (0.5, 0.95):
                        f["stage"].add_metric([stage, str(q)], float(np.quantile(values, q)))
                    f["stage"].add_metric([stage, "1"], float(values.max()))
            f["up"].add_metric([], 1)
        except Exception as exc:  # a scrape reports the instance down instead of failing the endpoint
            log.warning("Dagster instance unreadable for metrics: %s", exc)
            f = {"up": f["up"]}
            f["up"].add_metric([], 0)
        yield from f.values()


def stage_durations(instance: dg.DagsterInstance, limit: int = RECENT_PER_STAGE) -> dict[str, list[float]]:
    """The `seconds` of the latest `limit` materializations of each per-file stage."""
    out: dict[str, list[float]] = {}
    for stage in STAGES:
        records = instance.fetch_materializations(dg.AssetKey(stage), limit=limit).records
        values = []
        for record in records:
            materialization = record.asset_materialization
            entry = materialization.metadata.get("seconds") if materialization else None
            value: Any = getattr(entry, "value", None)
            if isinstance(value, int | float):
                values.append(float(value))
        out[stage] = values
    return out


def registry_for(instance: dg.DagsterInstance) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DagsterCollector(instance))
    return registry


_started = threading.Lock()
_server: Any = None


def serve_code_location_metrics(port: int, host: str = "0.0.0.0") -> bool:
    """Start the exporter once per code-location server process; True when this call started it.

    Definitions are loaded by the code server and by every run worker it launches (they inherit its
    environment), so only a process started as a gRPC/code server binds the port."""
    global _server
    if port <= 0:
        return False
    argv = " ".join(sys.argv)
    if not any(word in argv for word in (" grpc", "code-server", "code_server")):
        return False
    with _started:
        if _server is not None:
            return False
        try:
            _server = start_http_server(port, addr=host, registry=registry_for(dg.DagsterInstance.get()))
        except OSError as exc:
            log.warning("code-location metrics not served on port %s: %s", port, exc)
            return False
    log.info("code-location metrics on http://%s:%s/metrics", host, port)
    return True
