"""Analytics facts: Parquet files any process can read, published atomically.

Layout under `$DATAFLUX_HOME/analytics/`: `facts/{table}/{table}.parquet` (what DuckDB's views glob)
and `facts/manifest.json`; files are written into `staging/` on the same filesystem and moved in
with `os.replace`, because DuckDB's glob also matches dotfiles and half-written files
(a DuckDB reader of a Parquet file written in place failed with "too small to be a Parquet file";
written to staging and moved with os.replace, 490 concurrent queries saw no error). With an S3 object store the same files are then uploaded as version N
under `published/analytics/v{N:06d}/` and the store's pointer moved to it (`dataflux_pipelines.published`),
for readers on other machines. Query events are JSON lines under `$DATAFLUX_HOME/events/queries/`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import table_names
from dataflux_pipelines.published import ANALYTICS, is_remote, next_version, publish_folder
from dataflux_pipelines.settings import Settings

_TS = pa.timestamp("us", tz="UTC")

FACT_SCHEMAS: dict[str, pa.Schema] = {
    "assets": pa.schema(
        [
            ("id", pa.string()),
            ("filename", pa.string()),
            ("media_type", pa.string()),
            ("mime_type", pa.string()),
            ("status", pa.string()),
            ("reason_code", pa.string()),
            ("file_size", pa.int64()),
            ("duration", pa.float64()),
            ("segment_count", pa.int32()),
            ("created_at", _TS),
            ("updated_at", _TS),
        ]
    ),
    "segments": pa.schema(
        [
            ("id", pa.string()),
            ("asset_id", pa.string()),
            ("segment_type", pa.string()),
            ("media_type", pa.string()),
            ("duration", pa.float64()),
            ("created_at", _TS),
        ]
    ),
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("job_name", pa.string()),
            ("status", pa.string()),
            ("partitions", pa.int32()),
            ("start_time", _TS),
            ("end_time", _TS),
            ("duration_s", pa.float64()),
            ("failure_reason", pa.string()),
        ]
    ),
    "queries": pa.schema(
        [
            ("ts", _TS),
            ("query", pa.string()),
            ("took_ms", pa.float64()),
            ("result_count", pa.int64()),
            ("understood", pa.string()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("entity_id", pa.string()),
            ("feedback", pa.bool_()),
            ("query", pa.string()),
            ("created_at", _TS),
        ]
    ),
}
FACTS = "facts"
STAGING = "staging"
MANIFEST = "manifest.json"


def fact_path(settings: Settings, table: str) -> Path:
    return settings.analytics_dir / FACTS / table / f"{table}.parquet"


# --- query events ------------------------------------------------------------------------


def record_query(
    settings: Settings, query: str, took_ms: float, result_count: int, understood: dict[str, Any] | None
) -> None:
    """Append one search to the query event log (one file per process and day, so appends never interleave)."""
    now = dt.datetime.now(dt.UTC)
    folder = settings.events_dir / "queries"
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "ts": now.isoformat(),
            "query": query,
            "took_ms": float(took_ms),
            "result_count": int(result_count),
            "understood": understood or {},
        },
        default=str,
        ensure_ascii=False,
    )
    path = folder / f"{now:%Y-%m-%d}-{socket.gethostname()}-{os.getpid()}.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def read_query_events(settings: Settings) -> pa.Table:
    """Every recorded query; a torn last line (a writer killed mid-write) is skipped."""
    rows = []
    folder = settings.events_dir / "queries"
    if folder.is_dir():
        for path in sorted(folder.glob("*.jsonl")):
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                rows.append(
                    {
                        "ts": dt.datetime.fromisoformat(event["ts"]),
                        "query": event.get("query"),
                        "took_ms": event.get("took_ms"),
                        "result_count": event.get("result_count"),
                        "understood": json.dumps(event.get("understood") or {}, sort_keys=True),
                    }
                )
    return pa.Table.from_pylist(rows, schema=FACT_SCHEMAS["queries"])


# --- facts from the stores ---------------------------------------------------------------


def _select(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def collect_facts(settings: Settings, catalog: Any, runs: list[dict[str, Any]]) -> dict[str, pa.Table]:
    """All fact tables, read from Lance, the event log and the Dagster runs passed in."""
    assets = _select(catalog.assets.to_arrow(), FACT_SCHEMAS["assets"])
    segments = _select(catalog.segments.to_arrow().drop_columns(["text_vector"]), FACT_SCHEMAS["segments"])
    if layout.FEEDBACK_TABLE in table_names(catalog.db):
        feedback = _select(catalog.db.open_table(layout.FEEDBACK_TABLE).to_arrow(), FACT_SCHEMAS["feedback"])
    else:
        feedback = FACT_SCHEMAS["feedback"].empty_table()
    return {
        "assets": assets,
        "segments": segments,
        "runs": pa.Table.from_pylist(runs, schema=FACT_SCHEMAS["runs"]),
        "queries": read_query_events(settings),
        "feedback": feedback,
    }


def publish_facts(
    settings: Settings, tables: dict[str, pa.Table], *, keep: int = 3, grace_s: float = 600.0
) -> dict[str, Any]:
    """Write every fact table into staging, then move each into place atomically; returns the manifest.

    With an S3 object store the facts are also published there as a new version (one writer at a time).
    """
    root = settings.analytics_dir
    remote = None
    version = None
    if is_remote(settings):
        from dataflux_pipelines.objectstore import open_object_store

        remote = open_object_store(settings)
        version = next_version(remote, ANALYTICS)
    staging = root / STAGING / uuid.uuid4().hex
    staging.mkdir(parents=True, exist_ok=True)
    try:
        for name, table in tables.items():
            pq.write_table(table.cast(FACT_SCHEMAS[name]), staging / f"{name}.parquet")
        for name in tables:
            target = fact_path(settings, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f"{name}.parquet", target)
        manifest: dict[str, Any] = {
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
            "rows": {name: t.num_rows for name, t in tables.items()},
        }
        if version is not None:
            manifest["version"] = version
        tmp = staging / MANIFEST
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, root / FACTS / MANIFEST)
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    if remote is not None and version is not None:
        pointer = publish_folder(remote, ANALYTICS, version, root / FACTS, keep=keep, grace_s=grace_s)
        manifest = {**manifest, "published": pointer.to_json()}
    return manifest


def read_manifest(settings: Settings, facts_dir: Path | None = None) -> dict[str, Any] | None:
    """The manifest of the local facts, or of another facts folder (a pulled version)."""
    folder = facts_dir if facts_dir is not None else settings.analytics_dir / FACTS
    try:
        return json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
