"""Statistics for `GET /api/v1/stats` and the MCP statistics resource, read from the published facts."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import duckdb

from dataflux_pipelines.analytics.facts import read_manifest
from dataflux_pipelines.analytics.views import ROLLUPS, open_views
from dataflux_pipelines.settings import Settings


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    return value


class AnalyticsReader:
    """Thread-safe: one in-memory DuckDB per process, one cursor per call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = open_views(self.settings)
            return self._con.cursor()

    def rollup(self, name: str) -> list[dict[str, Any]]:
        if name not in ROLLUPS:
            raise ValueError(f"unknown rollup {name!r}; known: {', '.join(ROLLUPS)}")
        cur = self._cursor()
        try:
            result = cur.execute(f"SELECT * FROM {name}")
            columns = [d[0] for d in result.description]
            return [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in result.fetchall()]
        finally:
            cur.close()

    def stats(self) -> dict[str, Any]:
        """Totals and every rollup; says plainly when no facts have been published yet."""
        manifest = read_manifest(self.settings)
        if manifest is None:
            return {
                "available": False,
                "reason": "analytics facts have not been published yet (materialize analytics_facts)",
            }
        rollups = {name: self.rollup(name) for name in ROLLUPS}
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for row in rollups["assets_by_type_status"]:
            by_type[row["media_type"]] = by_type.get(row["media_type"], 0) + row["assets"]
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["assets"]
        latency = rollups["query_latency"][0]
        return {
            "available": True,
            "published_at": manifest["published_at"],
            "totals": {
                "assets": sum(by_type.values()),
                "segments": sum(r["segments"] for r in rollups["segments_by_type"]),
                "bytes": sum(r["bytes"] for r in rollups["assets_by_type_status"]),
                "media_seconds": round(sum(r["seconds"] for r in rollups["assets_by_type_status"]), 3),
                "queries": latency["queries"],
                "feedback": sum(r["total"] for r in rollups["feedback_by_type"]),
                "runs": sum(r["runs"] for r in rollups["processing_rate"]),
            },
            "assets_by_type": by_type,
            "assets_by_status": by_status,
            **rollups,
            "query_latency": latency,
        }
