"""Per-process, in-memory DuckDB over the published Parquet facts: views and rollups.

No process opens a DuckDB file, so nothing holds a lock a reader could trip over.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from dataflux_pipelines.analytics.facts import FACT_SCHEMAS, FACTS
from dataflux_pipelines.settings import Settings

ROLLUPS: dict[str, str] = {
    "assets_by_type_status": """
        SELECT coalesce(media_type, 'unknown') AS media_type, coalesce(status, 'unknown') AS status,
               count(*) AS assets, coalesce(sum(file_size), 0) AS bytes, coalesce(sum(duration), 0) AS seconds
        FROM assets GROUP BY ALL ORDER BY assets DESC, media_type, status""",
    "processing_rate": """
        SELECT date_trunc('hour', end_time) AS hour, count(*) AS runs,
               count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
               count(*) FILTER (WHERE status = 'FAILURE') AS failed,
               coalesce(sum(partitions), 0) AS files, avg(duration_s) AS mean_duration_s,
               quantile_cont(duration_s, 0.95) AS p95_duration_s
        FROM runs WHERE end_time IS NOT NULL GROUP BY ALL ORDER BY hour DESC""",
    "failure_reasons": """
        SELECT coalesce(reason_code, 'unknown') AS reason_code, count(*) AS assets
        FROM assets WHERE status = 'failed' GROUP BY ALL ORDER BY assets DESC, reason_code""",
    "query_latency": """
        SELECT count(*) AS queries, avg(took_ms) AS mean_ms,
               quantile_cont(took_ms, 0.5) AS p50_ms, quantile_cont(took_ms, 0.95) AS p95_ms,
               quantile_cont(took_ms, 0.99) AS p99_ms, max(took_ms) AS max_ms,
               count(*) FILTER (WHERE result_count = 0) AS no_results
        FROM queries""",
    "top_no_result_queries": """
        SELECT lower(trim(query)) AS query, count(*) AS times, max(ts) AS last_seen
        FROM queries WHERE result_count = 0 AND trim(coalesce(query, '')) <> ''
        GROUP BY ALL ORDER BY times DESC, query LIMIT 10""",
    "feedback_by_type": """
        SELECT coalesce(type, 'unknown') AS type, count(*) AS total,
               count(*) FILTER (WHERE feedback) AS positive, count(*) FILTER (WHERE NOT feedback) AS negative
        FROM feedback GROUP BY ALL ORDER BY total DESC, type""",
    "segments_by_type": """
        SELECT coalesce(segment_type, 'unknown') AS segment_type, count(*) AS segments,
               coalesce(sum(duration), 0) AS seconds
        FROM segments GROUP BY ALL ORDER BY segments DESC, segment_type""",
}


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def open_views(settings: Settings, facts_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per fact table and one per rollup (local facts unless `facts_dir`)."""
    con = duckdb.connect(":memory:")
    root = facts_dir if facts_dir is not None else settings.analytics_dir / FACTS
    for name in FACT_SCHEMAS:
        pattern = str(root / name / "*.parquet")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_sql_string(pattern)})")
    for name, sql in ROLLUPS.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    return con


def rollup_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every rollup (Dagster metadata)."""
    return {name: con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in ROLLUPS}
