"""The one DataFlux domain service that REST and MCP both call (no HTTP hop between them).

Methods return plain JSON-ready dicts (or the query service's Structs for search) and raise
`dataflux_api.errors.DataFluxError` subclasses; transports map those in one place each.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import mimetypes
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from dataflux_api import links
from dataflux_api.errors import Conflict, DataFluxError, Invalid, NotFound, PayloadTooLarge, Unavailable
from dataflux_api.query.models import SearchRequest, SearchResponse
from dataflux_api.query.search import SearchEngine
from dataflux_pipelines import landing, layout, records
from dataflux_pipelines.analytics.facts import record_query
from dataflux_pipelines.analytics.reader import AnalyticsReader
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph import store as graph_store
from dataflux_pipelines.graph.store import GraphReader
from dataflux_pipelines.identity import collection_id_for, is_uuid
from dataflux_pipelines.lance_sql import FilterError, literal, uuid_literal
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.objectstore import ObjectMissing, open_object_store
from dataflux_pipelines.records import MediaType, SegmentType, Status
from dataflux_pipelines.settings import Settings

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
SEGMENT_PAGE = 200  # segments in one asset detail answer, unless asked for another page
MAX_SEGMENT_PAGE = 1000
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class MediaObject:
    """An object-store file the API can stream: the original upload, a thumbnail or a keyframe."""

    key: str
    content_type: str
    filename: str
    size: int | None
    etag: str | None = None  # the store's validator, for HTTP caching and If-Range
    modified: dt.datetime | None = None


def _require_uuid(value: str, field: str) -> str:
    if not is_uuid(value):
        raise Invalid("invalid_id", f"{field} {value!r} is not a UUID", field=field)
    return value.lower()


def _graph_error(exc: Any) -> DataFluxError:
    """The graph module's `GraphError(code, message, field)` as the matching domain error."""
    if exc.code == "graph_unavailable":
        return Unavailable(exc.code, exc.message, field=exc.field)
    if exc.code == "not_found":
        return NotFound("entity_not_found", exc.message, field=exc.field)
    return Invalid(exc.code, exc.message, field=exc.field)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class DataFlux:
    """Holds the stores and readers of one DataFlux installation and answers every API question."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ModelRegistry | None = None,
        search_engine: SearchEngine | None = None,
        graph_reader: GraphReader | None = None,
        analytics_reader: AnalyticsReader | None = None,
    ) -> None:
        self.settings = settings
        # One reader handle for reads and the API's few writes: writes through a handle are
        # visible to it at once, other processes' commits within the consistency interval.
        self.catalog = Catalog(settings, reader=True)
        self.store = open_object_store(settings)
        self._registry = registry
        self._search_engine = search_engine
        self._graph_reader = graph_reader
        self._analytics_reader = analytics_reader
        self._lock = threading.RLock()

    # --- components, built on first use ---------------------------------------------------
    @property
    def registry(self) -> ModelRegistry:
        with self._lock:
            if self._registry is None:
                import torch

                # This process embeds one short query at a time beside LanceDB's own threads: a second
                # torch thread only contends (MiniLM 10 ms on 1 thread, 200 ms median on 2 under load).
                torch.set_num_threads(1)
                self._registry = ModelRegistry(self.settings)
            return self._registry

    @property
    def search_engine(self) -> SearchEngine:
        with self._lock:
            if self._search_engine is None:
                self._search_engine = SearchEngine(self.settings, self.registry, graph=self.graph_reader)
            return self._search_engine

    @property
    def graph_reader(self) -> GraphReader:
        """The published-graph reader (it reopens when a new snapshot is published)."""
        with self._lock:
            if self._graph_reader is None:
                self._graph_reader = GraphReader.for_settings(self.settings)
            return self._graph_reader

    @property
    def analytics_reader(self) -> AnalyticsReader:
        with self._lock:
            if self._analytics_reader is None:
                self._analytics_reader = AnalyticsReader(self.settings)
            return self._analytics_reader

    def _table(self, name: str, schema: pa.Schema) -> Any:
        return self.catalog.table(name, schema)

    # --- URLs -------------------------------------------------------------------------------
    def _asset_out(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["created_at"] = _utc(out.get("created_at"))
        out["updated_at"] = _utc(out.get("updated_at"))
        out["thumbnail_url"] = links.asset_thumbnail_url(row["id"]) if row.get("thumbnail_path") else None
        has_source = row.get("storage_path") or row.get("landing_key")
        out["download_url"] = links.asset_download_url(row["id"]) if has_source else None
        return out

    def _segment_out(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in ("text_vector", "search_text")}
        out["created_at"] = _utc(out.get("created_at"))
        out["thumbnail_url"] = links.segment_thumbnail_url(row["id"]) if row.get("thumbnail_path") else None
        out["keyframe_url"] = links.segment_keyframe_url(row["id"]) if row.get("keyframe_path") else None
        return out

    # --- assets -----------------------------------------------------------------------------
    def upload(
        self,
        stream: BinaryIO,
        filename: str,
        *,
        context: str | None = None,
        priority: int = 5,
        collection_id: str | None = None,
    ) -> dict[str, Any]:
        """Land an upload (streamed to disk while hashing); 409 for bytes DataFlux already has."""
        collection_id = self._check_landing_meta(priority, collection_id)
        try:
            receipt = landing.receive_upload(
                self.store,
                self.catalog,
                stream,
                filename or "unnamed",
                context=context,
                priority=priority,
                collection_id=collection_id,
                max_bytes=self.settings.upload_max_bytes,
                scratch=self.settings.scratch_dir,
            )
        except landing.UploadTooLarge as exc:
            raise PayloadTooLarge(
                "upload_too_large", f"the file exceeds the upload limit of {exc.limit} bytes", field="file"
            ) from exc
        except landing.EmptyUpload as exc:
            raise Invalid("empty_file", "the uploaded file is empty", field="file") from exc
        if receipt.duplicate_of is not None:
            raise Conflict(
                "duplicate_asset",
                f"these bytes are already asset {receipt.duplicate_of} (status {receipt.status})",
                field="file",
                extra={"existing_id": receipt.duplicate_of},
            )
        return {
            "id": receipt.asset_id,
            "status": receipt.status,
            "eta_seconds": receipt.eta_seconds,
            "filename": landing.safe_filename(filename or "unnamed"),
            "url": links.asset_url(receipt.asset_id),
        }

    def _check_landing_meta(self, priority: int, collection_id: str | None) -> str | None:
        """The rules every way in (upload, ingest, MCP) shares for priority and collection."""
        if not 1 <= priority <= 10:
            raise Invalid(
                "invalid_priority", f"priority must be between 1 and 10, got {priority}", field="priority"
            )
        if collection_id is not None:
            collection_id = _require_uuid(collection_id, "collection_id")
            if self._collection_row(collection_id) is None:
                raise Invalid(
                    "unknown_collection", f"no collection with id {collection_id}", field="collection_id"
                )
        return collection_id

    def ingest_files(
        self,
        paths: Iterable[Path],
        *,
        context: str | None = None,
        priority: int = 5,
        collection_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Land local files (folders recursively) under the same rules as an upload, one result per file.

        A result has `refused` (a reason code) and `message` when the file was not landed.
        """
        collection_id = self._check_landing_meta(priority, collection_id)
        # Catalog rows are written in batches (and the rest when the iteration ends or is closed); the
        # accepted files go to landing a chunk at a time, so their existing rows are read together.
        with landing.Registrations(self.catalog) as registrations:
            chunk: list[dict[str, Any]] = []
            accepted = 0
            for path in landing.files_to_ingest(paths):
                size = path.stat().st_size
                out: dict[str, Any] = {"path": path, "filename": landing.safe_filename(path.name)}
                if size == 0:
                    out.update(refused="empty_file", message=f"{path} is empty")
                elif size > self.settings.upload_max_bytes:
                    limit = self.settings.upload_max_bytes
                    out.update(
                        refused="file_too_large",
                        message=f"{path} has {size} bytes, over the limit of {limit}",
                    )
                else:
                    accepted += 1
                chunk.append(out)
                if accepted >= landing.LOOKUP_FILES:
                    yield from self._land_chunk(chunk, context, priority, collection_id, registrations)
                    chunk, accepted = [], 0
            yield from self._land_chunk(chunk, context, priority, collection_id, registrations)

    def _land_chunk(
        self,
        chunk: list[dict[str, Any]],
        context: str | None,
        priority: int,
        collection_id: str | None,
        registrations: landing.Registrations,
    ) -> Iterator[dict[str, Any]]:
        """The results of a chunk of `ingest_files`, in order: refusals as they are, the rest landed."""
        landed = landing.ingest_paths(
            self.store,
            self.catalog,
            [out["path"] for out in chunk if "refused" not in out],
            context=context,
            priority=priority,
            collection_id=collection_id,
            registrations=registrations,
        )
        # One receipt per accepted path, in order, each yielded as soon as its file is landed.
        for out in chunk:
            if "refused" in out:
                yield {**out, "path": str(out["path"])}
            else:
                _, receipt = next(landed)
                yield {
                    **out,
                    "path": str(out["path"]),
                    **dataclasses.asdict(receipt),
                    "refused": None,
                    "message": None,
                }
        if next(landed, None) is not None:
            raise AssertionError("ingest_paths landed more files than it was given")

    def last_updated(self) -> dt.datetime | None:
        """When any asset row last changed."""
        assets = self.catalog.assets
        if not assets.count_rows():
            return None
        column = assets.search().select(["updated_at"]).limit(None).to_arrow()["updated_at"]
        return _utc(pc.max(column).as_py())

    def list_assets(
        self,
        *,
        page: int = 1,
        limit: int = 20,
        status: str | None = None,
        mime_type: str | None = None,
        media_type: str | None = None,
        collection_id: str | None = None,
    ) -> dict[str, Any]:
        """A page of assets, newest first; `limit` is clamped to 1..100."""
        if page < 1:
            raise Invalid("invalid_page", f"page must be 1 or more, got {page}", field="page")
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        if status is not None and status not in {s.value for s in Status}:
            allowed = ", ".join(s.value for s in Status)
            raise Invalid("invalid_filter", f"status must be one of {allowed}", field="status")
        if media_type is not None and media_type not in {m.value for m in MediaType}:
            allowed = ", ".join(m.value for m in MediaType)
            raise Invalid("invalid_filter", f"media_type must be one of {allowed}", field="media_type")
        if collection_id is not None:
            collection_id = _require_uuid(collection_id, "collection_id")
        try:
            rows, total = self.catalog.list_assets(
                status=status,
                mime_type=mime_type,
                media_type=media_type,
                collection_id=collection_id,
                offset=(page - 1) * limit,
                limit=limit,
            )
        except FilterError as exc:
            raise Invalid("invalid_filter", str(exc), field=exc.field) from exc
        return {
            "assets": [self._asset_out(r) for r in rows],
            "pagination": {"page": page, "limit": limit, "total": total, "pages": math.ceil(total / limit)},
        }

    def status_rows(self) -> list[dict[str, Any]]:
        """Every asset (oldest first) with its status and, when it failed, the reason: `dataflux status`."""
        rows = self.catalog.find_assets()
        rows.sort(key=lambda r: (r["created_at"], r["filename"] or ""))
        return rows

    def _asset_row(self, asset_id: str) -> dict[str, Any]:
        asset_id = _require_uuid(asset_id, "id")
        row = self.catalog.get_asset(asset_id)
        if row is None:
            raise NotFound("asset_not_found", f"no asset with id {asset_id}", field="id")
        return row

    def get_asset(
        self, asset_id: str, *, segment_offset: int = 0, segment_limit: int = SEGMENT_PAGE
    ) -> dict[str, Any]:
        """One asset with a page of its segments (in order) and the URLs of thumbnails and keyframes."""
        if segment_offset < 0:
            raise Invalid("invalid_offset", "segment_offset must be 0 or more", field="segment_offset")
        if not 1 <= segment_limit <= MAX_SEGMENT_PAGE:
            raise Invalid(
                "invalid_limit", f"segment_limit must be 1 to {MAX_SEGMENT_PAGE}", field="segment_limit"
            )
        row = self._asset_row(asset_id)
        out = self._asset_out(row)
        out["processing_status"] = row.get("status")
        segments = self.catalog.segments_for(row["id"])
        page = segments[segment_offset : segment_offset + segment_limit]
        out["segments"] = [self._segment_out(s) for s in page]
        out["segments_total"] = len(segments)
        out["segment_offset"] = segment_offset
        return out

    def delete_asset(self, asset_id: str) -> None:
        """Remove an asset from every store (objects, catalog, segments, vectors, graph)."""
        asset_id = _require_uuid(asset_id, "id")
        if not landing.delete_asset(self.settings, self.store, self.catalog, asset_id):
            raise NotFound("asset_not_found", f"no asset with id {asset_id}", field="id")

    def reanalyze(self, asset_id: str, force: bool = False, priority: int | None = None) -> dict[str, Any]:
        """Ask the landing sensor for a new run of this asset's partition."""
        row = self._asset_row(asset_id)
        if priority is not None and not 1 <= priority <= 10:
            raise Invalid(
                "invalid_priority", f"priority must be between 1 and 10, got {priority}", field="priority"
            )
        priority = priority or int(row.get("priority") or 5)
        key = landing.request_reanalysis(self.store, row["id"], priority, force)
        return {
            "id": row["id"],
            "filename": row.get("filename"),
            "status": "requested",
            "request_key": key,
            "force": force,
            "priority": priority,
        }

    # --- media ------------------------------------------------------------------------------
    def asset_media(self, asset_id: str, kind: str) -> MediaObject:
        """The original file (`original`) or the asset thumbnail (`thumbnail`) to stream."""
        row = self._asset_row(asset_id)
        if kind == "original":
            key = row.get("storage_path") or row.get("landing_key")
            content_type = row.get("mime_type") or "application/octet-stream"
            filename = row.get("filename") or row["id"]
        else:
            key = row.get("thumbnail_path")
            content_type = mimetypes.guess_type(key or "")[0] or "image/jpeg"
            filename = f"{row['id']}-thumbnail.jpg"
        if not key:
            raise NotFound(
                "media_not_found",
                f"asset {row['id']} has no {kind} yet (status {row.get('status')})",
                field="id",
            )
        return self._media(key, content_type, filename)

    def segment_media(self, segment_id: str, kind: str) -> MediaObject:
        """A segment's `thumbnail` or `keyframe` image."""
        row = self._segment_row(segment_id)
        key = row.get(f"{kind}_path")
        if not key:
            raise NotFound("media_not_found", f"segment {row['id']} has no {kind}", field="id")
        content_type = mimetypes.guess_type(key)[0] or "image/jpeg"
        return self._media(key, content_type, f"{row['id']}-{kind}.jpg")

    def _media(self, key: str, content_type: str, filename: str) -> MediaObject:
        info = self.store.head(key)
        if info is None:
            raise NotFound("media_not_found", f"the object {key} is missing from the object store")
        return MediaObject(key, content_type, filename, info.size, info.etag, info.modified)

    def read_object(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes of one object (or of `length` bytes from `start`) in chunks, for streaming responses."""
        try:
            if start == 0 and length is None:
                with self.store.open_read(key) as stream:
                    yield from iter(lambda: stream.read(_CHUNK), b"")
                return
            with self.store.open_range(key, start, length) as stream:
                left = length
                while left is None or left > 0:
                    chunk = stream.read(_CHUNK if left is None else min(_CHUNK, left))
                    if not chunk:
                        break
                    if left is not None:
                        left -= len(chunk)
                    yield chunk
        except ObjectMissing as exc:
            raise NotFound("media_not_found", f"the object {key} is missing from the object store") from exc

    # --- segments ---------------------------------------------------------------------------
    def _segment_row(self, segment_id: str) -> dict[str, Any]:
        segment_id = _require_uuid(segment_id, "id")
        row = self.catalog.get_segment(segment_id)
        if row is None:
            raise NotFound("segment_not_found", f"no segment with id {segment_id}", field="id")
        return row

    def get_segment(self, segment_id: str) -> dict[str, Any]:
        return self._segment_out(self._segment_row(segment_id))

    # --- search -----------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchResponse:
        """Hybrid search through the query service, which checks the request (limits, filters) once."""
        self._check_media_types(request.media_types)
        try:
            response = self.search_engine.search(request)
        except FilterError as exc:
            code = "empty_query" if exc.field == "query" and not request.query.strip() else "invalid_filter"
            raise Invalid(code, str(exc), field=exc.field) from exc
        self._record_query(request.query, response)
        return response

    def _record_query(self, query: str, response: SearchResponse) -> None:
        try:
            record_query(self.settings, query, response.took_ms, response.total, response.understood)
        except OSError as exc:
            # The answer is already correct; a full or read-only events disk must not turn it into a 500.
            log.warning("could not record the query event in %s: %s", self.settings.events_dir, exc)

    def similar(
        self, entity_id: str, threshold: float = 0.75, limit: int = 10, media_types: list[str] | None = None
    ) -> SearchResponse:
        """Assets and segments similar to an asset or segment."""
        entity_id = _require_uuid(entity_id, "entity_id")
        if not 0.0 <= threshold <= 1.0:
            raise Invalid("invalid_threshold", "threshold must be between 0 and 1", field="threshold")
        self._check_media_types(media_types or [])
        # The engine finds the entity in the snapshot it searches (segment first, then asset): no
        # separate catalog lookups first, which cost two more LanceDB queries per request.
        try:
            return self.search_engine.similar(
                entity_id, threshold, max(1, min(limit, 50)), media_types or None
            )
        except NotFound as exc:
            raise NotFound(
                "entity_not_found", f"no asset or segment with id {entity_id}", field="entity_id"
            ) from exc
        except FilterError as exc:
            raise Invalid("invalid_filter", str(exc), field=exc.field) from exc

    @staticmethod
    def _check_media_types(media_types: list[str]) -> None:
        allowed = {m.value for m in MediaType}
        for value in media_types:
            if value not in allowed:
                raise Invalid(
                    "invalid_filter",
                    f"media type {value!r} is not one of {', '.join(sorted(allowed))}",
                    field="media_types",
                )

    def _entity_kind(self, entity_id: str) -> str | None:
        if self.catalog.get_asset(entity_id) is not None:
            return "asset"
        if self.catalog.get_segment(entity_id) is not None:
            return "segment"
        if self._collection_row(entity_id) is not None:
            return "collection"
        return None

    # --- collections ------------------------------------------------------------------------
    def _collections_table(self) -> Any:
        return self._table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA)

    def _collection_row(self, collection_id: str) -> dict[str, Any] | None:
        rows = (
            self._collections_table().search().where(f"id = {uuid_literal(collection_id)}").limit(1).to_list()
        )
        return rows[0] if rows else None

    def collections(self) -> list[dict[str, Any]]:
        """Every collection with the number of assets in it."""
        table = self._collections_table()
        n = table.count_rows()
        rows = table.search().limit(max(n, 1)).to_list() if n else []
        members: dict[str, set[str]] = {}
        assets = self.catalog.assets
        linked = assets.count_rows("collection_id IS NOT NULL")
        if linked:
            for row in (
                assets.search()
                .where("collection_id IS NOT NULL")
                .select(["id", "collection_id"])
                .limit(linked)
                .to_list()
            ):
                members.setdefault(row["collection_id"], set()).add(row["id"])
        out = []
        for row in sorted(rows, key=lambda r: (r["name"] or "", r["id"])):
            ids = members.get(row["id"], set()) | set(row.get("asset_ids") or [])
            out.append(self._collection_out(row, len(ids)))
        return out

    @staticmethod
    def _collection_out(row: dict[str, Any], count: int) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row.get("description"),
            "asset_count": count,
            "auto_generated": bool(row.get("auto_generated")),
            "concepts": list(row.get("concepts") or []),
            "created_at": _utc(row.get("created_at")),
        }

    def create_collection(
        self, name: str, description: str | None = None, auto_generated: bool = False
    ) -> dict[str, Any]:
        """A new (empty) collection; the same name twice is a conflict with the existing id."""
        name = name.strip()
        if not name:
            raise Invalid("invalid_name", "name must not be empty", field="name")
        collection_id = collection_id_for(name, auto_generated)
        if self._collection_row(collection_id) is not None:
            raise Conflict(
                "duplicate_collection",
                f"a collection named {name!r} already exists",
                field="name",
                extra={"existing_id": collection_id},
            )
        now = dt.datetime.now(dt.UTC)
        row: dict[str, Any] = {
            "id": collection_id,
            "name": name,
            "description": description,
            "auto_generated": auto_generated,
            "asset_ids": [],
            "concepts": [],
            "created_at": now,
            "updated_at": now,
        }
        table = pa.Table.from_pylist([row], schema=records.COLLECTIONS_SCHEMA)
        # Insert-if-absent by id, so two concurrent creations of one name leave one row.
        self._collections_table().merge_insert("id").when_not_matched_insert_all().execute(table)
        return self._collection_out(row, 0)

    # --- feedback ---------------------------------------------------------------------------
    def feedback(
        self,
        type: str,
        entity_id: str,
        feedback: bool,
        details: str | None = None,
        query: str | None = None,
    ) -> dict[str, Any]:
        """Store a relevance/accuracy/quality judgement in the Lance `feedback` table for analytics."""
        if type not in ("relevance", "accuracy", "quality"):
            raise Invalid(
                "invalid_feedback_type", "type must be relevance, accuracy or quality", field="type"
            )
        entity_id = _require_uuid(entity_id, "entity_id")
        if self._entity_kind(entity_id) is None:
            raise NotFound(
                "entity_not_found", f"no asset, segment or collection with id {entity_id}", field="entity_id"
            )
        row = {
            "id": str(uuid.uuid4()),
            "type": type,
            "entity_id": entity_id,
            "feedback": bool(feedback),
            "details": details,
            "query": query,
            "created_at": dt.datetime.now(dt.UTC),
        }
        table = pa.Table.from_pylist([row], schema=records.FEEDBACK_SCHEMA)
        self._table(layout.FEEDBACK_TABLE, records.FEEDBACK_SCHEMA).add(table)
        return row

    # --- graph and analytics ----------------------------------------------------------------
    def relationships(self, entity_id: str, depth: int = 1, types: list[str] | None = None) -> dict[str, Any]:
        """Neighbours of an entity in the published graph, up to `depth` hops over allowed edge types."""
        try:
            # Checked here, before any graph access, against the graph's own allow-lists.
            graph_store.validate_depth(depth)
            graph_store.validate_types(types or None)
            graph_store.validate_entity_id(entity_id)
            return graph_store.relationships(self.graph_reader, entity_id, depth=depth, types=types or None)
        except graph_store.GraphError as exc:
            raise _graph_error(exc) from exc

    def counts(self) -> dict[str, Any]:
        """Assets by status, media type and MIME type, segments by type, and the processing queue depth."""
        by_status = self.catalog.counts_by("status")
        segments = self.catalog.segments
        by_type = {}
        for kind in SegmentType:
            n = segments.count_rows(f"segment_type = {literal(kind.value)}")
            if n:
                by_type[kind.value] = n
        return {
            "assets": {
                "total": sum(by_status.values()),
                "by_status": by_status,
                "by_media_type": self.catalog.counts_by("media_type"),
                "by_mime_type": self.catalog.counts_by("mime_type"),
            },
            "segments": {"total": segments.count_rows(), "by_type": by_type},
            "queue_depth": by_status.get(Status.QUEUED.value, 0) + by_status.get(Status.PROCESSING.value, 0),
        }

    def operations(self) -> dict[str, Any]:
        """What an operator alerts on: failures by reason code, the age of the oldest waiting file,
        free space where the data lives, and this process's model load and inference times."""
        assets = self.catalog.assets

        def column(where: str, name: str) -> list[Any]:
            rows = assets.search().where(where).select([name]).limit(max(assets.count_rows(), 1)).to_list()
            return [row[name] for row in rows]

        failed: dict[str, int] = {}
        for reason in column(f"status = {literal(Status.FAILED.value)}", "reason_code"):
            failed[reason or "unknown"] = failed.get(reason or "unknown", 0) + 1
        waiting = f"status IN ({literal(Status.QUEUED.value)}, {literal(Status.PROCESSING.value)})"
        stamps = [stamp for stamp in column(waiting, "updated_at") if stamp is not None]
        oldest = 0.0
        if stamps:
            first = min(stamps)
            first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
            oldest = max(0.0, (dt.datetime.now(dt.UTC) - first).total_seconds())
        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        disk = shutil.disk_usage(home)
        with self._lock:
            registry = self._registry
        return {
            "failed_by_reason": failed,
            "oldest_waiting_seconds": oldest,
            "disk": {"path": str(home), "free_bytes": disk.free, "total_bytes": disk.total},
            "models": registry.timings() if registry is not None else {},
        }

    def stats(self) -> dict[str, Any]:
        """Live totals from the catalog, plus the published analytics rollups (or why there are none)."""
        out = self.counts()
        out["collections"] = self._collections_table().count_rows()
        out["feedback"] = self._table(layout.FEEDBACK_TABLE, records.FEEDBACK_SCHEMA).count_rows()
        out["analytics"] = self.analytics_reader.stats()
        return out

    # --- health -----------------------------------------------------------------------------
    def health(self, *, auth_mode: str = "jwt") -> dict[str, Any]:
        """Stores reachable, models and device, and every reason DataFlux runs degraded."""
        degraded: list[str] = []
        stores: dict[str, Any] = {}
        try:
            self.catalog.db.list_tables()
            stores["lance"] = {"ok": True, "uri": self.settings.lance_uri}
        except Exception as exc:  # reported, not swallowed: the probe's job is to say what failed
            stores["lance"] = {"ok": False, "uri": self.settings.lance_uri, "error": str(exc)}
            degraded.append(f"lance unreachable: {exc}")
        try:
            self.store.head(f"{layout.LANDING_PREFIX}.health")
            stores["object_store"] = {"ok": True, "url": self.settings.object_store_url}
        except Exception as exc:
            stores["object_store"] = {"ok": False, "url": self.settings.object_store_url, "error": str(exc)}
            degraded.append(f"object store unreachable: {exc}")
        graph = self.graph_reader
        if not graph.available():
            stores["graph"] = {"ok": True, "published": False, "path": str(self.settings.graph_dir)}
            degraded.append(
                "graph: no snapshot published yet (materialize media_graph); relationships answer 503"
            )
        else:
            stores["graph"] = {"ok": True, "published": True, "path": str(self.settings.graph_dir)}
        stores["analytics"] = {"ok": True, "path": str(self.settings.analytics_dir)}

        models = self.registry.status(load=False)
        degraded.extend(models.get("degraded", []))
        vision = models.get("vision") or {}
        auth = {"mode": auth_mode}
        if auth_mode == "open":
            auth["warning"] = "no DATAFLUX_JWT_SECRET: every request is allowed (loopback only)"
        return {
            "status": "degraded" if degraded else "ok",
            "profile": vision.get("profile") or "not loaded yet",
            # Which model sees the pictures and why (CLIP loaded, or the offline pack and CLIP's error).
            "visual_model": {"model": vision.get("model") or "not loaded yet", "why": vision.get("why")},
            "device": models.get("device"),
            "stores": stores,
            "models": models,
            "auth": auth,
            "degraded": degraded,
        }
