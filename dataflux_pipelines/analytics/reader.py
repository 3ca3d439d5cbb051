"""Statistics for `GET /api/v1/stats` and the MCP statistics resource, read from the published facts.

With an S3 object store the facts are the version the object store's pointer names, pulled into
`$DATAFLUX_HOME/cache/analytics/` (checked at most every `DATAFLUX_PUBLISHED_POLL_S` seconds).
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import duckdb

from dataflux_pipelines.analytics.facts import FACTS, read_manifest
from dataflux_pipelines.analytics.views import ROLLUPS, open_views
from dataflux_pipelines.published import (
    ANALYTICS,
    PublishedError,
    SnapshotFollower,
    cache_dir,
    current_target,
    is_remote,
)
from dataflux_pipelines.settings import Settings


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 3)
    return value


class AnalyticsReader:
    """Thread-safe: one in-memory DuckDB per facts version, one cursor per call."""

    def __init__(self, settings: Settings, *, store: Any = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_facts: Path | None = None
        self.follower: SnapshotFollower | None = None
        if store is None and is_remote(settings):
            from dataflux_pipelines.objectstore import open_object_store

            store = open_object_store(settings)
        if store is not None:
            self.follower = SnapshotFollower(
                store, ANALYTICS, cache_dir(settings, ANALYTICS), suffix="", poll_s=settings.published_poll_s
            )

    def facts_dir(self) -> Path | None:
        """The facts folder answers come from: the local one, or the pulled version (None before any)."""
        if self.follower is None:
            return self.settings.analytics_dir / FACTS
        self.follower.sync()
        return current_target(self.follower.cache)

    def _cursor(self, facts: Path) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None or self._con_facts != facts:
                # The old connection is not closed: cursors other threads hold keep it alive until done.
                self._con = open_views(self.settings, facts)
                self._con_facts = facts
            return self._con.cursor()

    def _rollup(self, name: str, facts: Path) -> list[dict[str, Any]]:
        if name not in ROLLUPS:
            raise ValueError(f"unknown rollup {name!r}; known: {', '.join(ROLLUPS)}")
        cur = self._cursor(facts)
        try:
            result = cur.execute(f"SELECT * FROM {name}")
            columns = [d[0] for d in result.description]
            return [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in result.fetchall()]
        finally:
            cur.close()

    def rollup(self, name: str) -> list[dict[str, Any]]:
        facts = self.facts_dir()
        if facts is None:
            raise ValueError("analytics facts have not been published yet (materialize analytics_facts)")
        return self._rollup(name, facts)

    def stats(self) -> dict[str, Any]:
        """Totals and every rollup; says plainly when no facts have been published (or pulled) yet."""
        try:
            facts = self.facts_dir()
        except PublishedError as exc:
            return {"available": False, "reason": f"analytics facts could not be pulled: {exc}"}
        manifest = read_manifest(self.settings, facts) if facts is not None else None
        if facts is None or manifest is None:
            return {
                "available": False,
                "reason": "analytics facts have not been published yet (materialize analytics_facts)",
            }
        rollups = {name: self._rollup(name, facts) for name in ROLLUPS}
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for row in rollups["assets_by_type_status"]:
            by_type[row["media_type"]] = by_type.get(row["media_type"], 0) + row["assets"]
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["assets"]
        latency = rollups["query_latency"][0]
        out = {
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
        if "version" in manifest:
            out["version"] = manifest["version"]
        return out
