"""The asset catalog and segment rows in LanceDB, shared by the pipelines (writers) and the API (readers)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import lancedb
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.table import LanceTable

from dataflux_pipelines import layout, records
from dataflux_pipelines.lance_sql import in_list, literal, uuid_literal
from dataflux_pipelines.records import Status
from dataflux_pipelines.settings import Settings

ASSET_JSON_COLUMNS = records.ASSET_JSON_COLUMNS
SEGMENT_JSON_COLUMNS = records.SEGMENT_JSON_COLUMNS
_META_COLUMNS = [f.name for f in records.ASSETS_SCHEMA]
_SEGMENT_COLUMNS = [f.name for f in records.SEGMENTS_SCHEMA if f.name != "text_vector"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def connect(settings: Settings, *, reader: bool = False) -> lancedb.DBConnection:
    """Open LanceDB; readers see other processes' commits within the configured interval."""
    kwargs: dict[str, Any] = {}
    if reader:
        kwargs["read_consistency_interval"] = dt.timedelta(seconds=settings.lance_read_consistency_s)
    else:
        # Writers always read the latest version before they merge.
        kwargs["read_consistency_interval"] = dt.timedelta(0)
    if settings.lance_uri.startswith("s3://"):
        kwargs["storage_options"] = settings.store_options
    return lancedb.connect(settings.lance_uri, **kwargs)


def table_names(db: lancedb.DBConnection) -> list[str]:
    """Every table in the database (`list_tables` pages its answer)."""
    names: list[str] = []
    token = None
    while True:
        page = db.list_tables(page_token=token)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return names


class FixedSchemaTable(LanceTable):
    """A table handle that reads its schema once.

    LanceDB asks a table for its schema three to five times per query it builds (vector column, row-id
    handling, blob columns), each a round trip through its event loop. For a batch of reads during which
    no column is added (a stage's graph contributions), once is enough: 18 ms of a picture's 81 ms here.
    """

    @functools.cached_property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        return LanceTable.schema.fget(self)  # type: ignore[attr-defined]


def open_fixed_schema(db: lancedb.DBConnection, name: str) -> Any:
    """`db.open_table(name)` as a `FixedSchemaTable` (a remote table stays as LanceDB made it)."""
    table = db.open_table(name)
    if type(table) is LanceTable:
        table.__class__ = FixedSchemaTable
    return table


def _rows_to_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


class Catalog:
    """Assets and their segments; every write is a merge by id, so retries and reprocessing overwrite."""

    def __init__(self, settings: Settings, *, reader: bool = False) -> None:
        self.settings = settings
        self.db = connect(settings, reader=reader)
        self._lock = threading.Lock()
        self._tables: dict[str, Any] = {}

    # --- tables -------------------------------------------------------------------------
    def table(self, name: str, schema: pa.Schema) -> Any:
        """A table, created from its record schema if missing; columns added to the record later are
        added to an older table as nulls, so a new field is one line in `records` and nothing else."""
        with self._lock:
            tbl = self._tables.get(name)
            if tbl is None:
                try:
                    # Opened, not created with exist_ok: LanceDB refuses that when the stored schema
                    # differs, which is exactly the older table this adds the new columns to.
                    tbl = self.db.open_table(name)
                except ValueError:  # "Table '...' was not found"
                    tbl = self.db.create_table(name, schema=schema, exist_ok=True)
                stored = set(tbl.schema.names)  # one schema read (each is a LanceDB call), not one a field
                missing = [f for f in schema if f.name not in stored]
                if missing:
                    tbl.add_columns(pa.schema(missing))
                self._tables[name] = tbl
            return tbl

    @property
    def assets(self) -> Any:
        return self.table(layout.ASSETS_TABLE, records.ASSETS_SCHEMA)

    @property
    def segments(self) -> Any:
        return self.table(layout.SEGMENTS_TABLE, records.SEGMENTS_SCHEMA)

    def versions(self) -> dict[str, int]:
        """Current version of every DataFlux table: the cache key of anything derived from them."""
        out = {}
        for name in table_names(self.db):
            try:
                out[name] = self.db.open_table(name).version
            except (FileNotFoundError, ValueError):
                continue
        return out

    # --- assets -------------------------------------------------------------------------
    def upsert_assets(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace whole asset rows (missing columns become null)."""
        if not rows:
            return
        stamped = []
        for row in rows:
            row = dict(row)
            for key in ASSET_JSON_COLUMNS:
                row[key] = _json(row.get(key))
            if row.get("created_at") is None:
                row["created_at"] = now()
            row["updated_at"] = now()
            stamped.append(row)
        table = _rows_to_table(stamped, records.ASSETS_SCHEMA)
        (
            self.assets.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(table)
        )

    def update_assets(self, updates: dict[str, dict[str, Any]]) -> None:
        """Change some fields of existing asset rows, keyed by id."""
        if not updates:
            return
        current = {row["id"]: row for row in self.get_assets(list(updates))}
        rows = []
        for asset_id, fields in updates.items():
            base = current.get(asset_id)
            if base is None:
                continue
            base.update(fields)
            rows.append(base)
        self.upsert_assets(rows)

    def set_status(
        self,
        asset_ids: Iterable[str],
        status: Status,
        reason_code: str | None = None,
        message: str | None = None,
    ) -> None:
        fields = {"status": status.value, "reason_code": reason_code, "reason_message": message}
        self.update_assets({a: dict(fields) for a in asset_ids})

    def get_asset(self, asset_id: str) -> dict[str, Any] | None:
        rows = self.get_assets([asset_id])
        return rows[0] if rows else None

    def get_assets(self, asset_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not asset_ids:
            return []
        where = in_list("id", asset_ids, uuids=True)
        rows = self.assets.search().where(where).select(_META_COLUMNS).limit(len(asset_ids)).to_list()
        return [_decode_asset(r) for r in rows]

    def find_assets(self, where: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Asset rows matching a filter built from `lance_sql` pieces (never raw user input)."""
        query = self.assets.search()
        if where:
            query = query.where(where)
        # No count first: counting with a filter scans the table as much as reading does.
        rows = query.select(_META_COLUMNS).limit(limit).to_list()
        return [_decode_asset(r) for r in rows]

    def list_assets(
        self,
        *,
        status: str | None = None,
        mime_type: str | None = None,
        media_type: str | None = None,
        collection_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of assets, newest first, with the total matching the filters."""
        clauses = []
        if status:
            clauses.append(f"status = {literal(status)}")
        if mime_type:
            clauses.append(f"mime_type = {literal(mime_type)}")
        if media_type:
            clauses.append(f"media_type = {literal(media_type)}")
        if collection_id:
            clauses.append(f"collection_id = {uuid_literal(collection_id, 'collection_id')}")
        where = " AND ".join(clauses) or None
        # Order by two narrow columns, then read whole rows for the page only: a page costs the
        # same at 100 and 10,000 assets except for the sort keys.
        query = self.assets.search()
        if where:
            query = query.where(where)
        keys = query.select(["id", "created_at"]).limit(None).to_arrow()
        total = keys.num_rows
        if total == 0 or offset >= total:
            return [], total
        created = keys.column("created_at").fill_null(now())
        order = pc.sort_indices(
            pa.table({"created_at": created, "id": keys.column("id")}),
            sort_keys=[("created_at", "descending"), ("id", "descending")],
        )
        page_ids = keys.column("id").take(order[offset : offset + limit]).to_pylist()
        by_id = {row["id"]: row for row in self.get_assets(page_ids)}
        return [by_id[i] for i in page_ids if i in by_id], total

    def landing_index(self) -> dict[str, dict[str, Any]]:
        """Assets still linked to a landing object, by landing key."""
        rows = self.find_assets("landing_key IS NOT NULL")
        return {r["landing_key"]: r for r in rows}

    def landing_filenames(self) -> list[str]:
        """The names of the files still in landing (none if there is no catalog yet); reads one column."""
        try:
            assets = self.db.open_table(layout.ASSETS_TABLE)  # not `self.assets`: that would create it
        except ValueError:  # "Table '...' was not found"
            return []
        query = assets.search().where("landing_key IS NOT NULL")
        return [
            name or "" for name in query.select(["filename"]).limit(None).to_arrow()["filename"].to_pylist()
        ]

    def counts_by(self, column: str) -> dict[str, int]:
        if column not in ("status", "media_type", "mime_type"):
            raise ValueError(f"cannot group by {column!r}")
        rows = self.assets.search().select([column]).limit(max(self.assets.count_rows(), 1)).to_list()
        counts: dict[str, int] = {}
        for row in rows:
            counts[row[column] or "unknown"] = counts.get(row[column] or "unknown", 0) + 1
        return counts

    # --- segments -----------------------------------------------------------------------
    def replace_segments(self, asset_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Make `rows` the exact segment set of one asset, in one commit (no stale rows survive)."""
        self.replace_segments_many([asset_id], rows)

    def replace_segments_many(self, asset_ids: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """Make `rows` the exact segment set of these assets, in one commit for the whole batch."""
        if not asset_ids:
            return
        prepared = []
        for row in rows:
            row = dict(row)
            for key in (*SEGMENT_JSON_COLUMNS, "words"):
                row[key] = _json(row.get(key))
            if row.get("created_at") is None:
                row["created_at"] = now()
            prepared.append(row)
        table = _rows_to_table(prepared, records.SEGMENTS_SCHEMA)
        (
            self.segments.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(in_list("asset_id", asset_ids, uuids=True))
            .execute(table, on_bad_vectors="null")
        )

    def segments_for(self, asset_id: str, *, with_vectors: bool = False) -> list[dict[str, Any]]:
        return self.segments_for_assets([asset_id], with_vectors=with_vectors)[asset_id]

    def segments_for_assets(
        self, asset_ids: Sequence[str], *, with_vectors: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """`segments_for` of several assets in one query: each asset's rows in sequence order (an asset
        without segments gets an empty list)."""
        out: dict[str, list[dict[str, Any]]] = {a: [] for a in asset_ids}
        if not asset_ids:
            return out
        query = self.segments.search().where(in_list("asset_id", asset_ids, uuids=True))
        if not with_vectors:
            query = query.select(_SEGMENT_COLUMNS)
        asked = {a.lower(): a for a in asset_ids}  # ids are stored lower-case; answer under the id asked
        for row in query.limit(None).to_list():
            out.setdefault(asked.get(row["asset_id"], row["asset_id"]), []).append(row)
        for asset_id, rows in out.items():
            rows.sort(key=lambda r: r["sequence_number"] or 0)
            out[asset_id] = [_decode_segment(r) for r in rows]
        return out

    def get_segment(self, segment_id: str) -> dict[str, Any] | None:
        rows = (
            self.segments.search()
            .where(f"id = {uuid_literal(segment_id)}")
            .select(_SEGMENT_COLUMNS)
            .limit(1)
            .to_list()
        )
        return _decode_segment(rows[0]) if rows else None

    def delete_asset_rows(self, asset_id: str) -> None:
        """Remove an asset's catalog row and segment rows (vectors are removed by the embeddings module)."""
        lit = uuid_literal(asset_id, "asset_id")
        self.segments.delete(f"asset_id = {lit}")
        self.assets.delete(f"id = {lit}")


def _decode_asset(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for key in ASSET_JSON_COLUMNS:
        raw = row.get(key)
        row[key] = json.loads(raw) if raw else {}
    row.pop("_distance", None)
    return row


def _decode_segment(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for key in SEGMENT_JSON_COLUMNS:
        raw = row.get(key)
        row[key] = json.loads(raw) if raw else {}
    if "words" in row:  # a JSON list: word times of a transcript, line boxes of on-screen text
        row["words"] = json.loads(row["words"]) if row["words"] else []
    if row.get("text_vector") is not None and hasattr(row["text_vector"], "tolist"):
        row["text_vector"] = row["text_vector"].tolist()
    row.pop("_distance", None)
    return row
