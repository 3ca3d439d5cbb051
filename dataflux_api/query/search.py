"""The one query service: hybrid retrieval over LanceDB, fused by rank, filtered in the store, grouped by asset."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
from lancedb.background_loop import LOOP
from lancedb.query import BooleanQuery, FullTextQuery, MatchQuery, Occur, PhraseQuery
from lancedb.table import LanceTable

from dataflux_api.errors import NotFound, Unavailable
from dataflux_api.links import asset_thumbnail_url, segment_thumbnail_url
from dataflux_api.query import rank, relevance
from dataflux_api.query.cache import ResultCache
from dataflux_api.query.lookup import AssetTable, SegmentLocator, VersionedIndex
from dataflux_api.query.models import (
    MAX_SEARCH_LIMIT,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SegmentHit,
)
from dataflux_api.query.parse import ParsedQuery, parse_query
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import FixedSchemaTable, connect, table_names
from dataflux_pipelines.embeddings.indexes import (
    SEARCH_PARAMS_TABLE,
    SearchParams,
    apply_search_params,
    load_search_params,
)
from dataflux_pipelines.graph.store import GraphReader, related_assets
from dataflux_pipelines.identity import is_uuid
from dataflux_pipelines.lance_sql import FilterError, in_list, literal, uuid_literal
from dataflux_pipelines.records import MediaType, Status, vector_matrix
from dataflux_pipelines.settings import Settings

if TYPE_CHECKING:
    from dataflux_pipelines.models.registry import ModelRegistry

MAX_SIMILAR_LIMIT = 50
MAX_WINDOW = 1000  # offset + limit: every retriever fetches this many candidates at most
MAX_QUERY_CHARS = 2000
SIMILAR_THRESHOLD = 0.75
# MiniLM cosine similarity below which a text-vector neighbour is noise, not a match; unrelated
# sentence pairs score about 0.0-0.15, paraphrases 0.5 and up.
TEXT_MIN_SIMILARITY = 0.2
GRAPH_WEIGHT = 0.5
VISION_PREFIX = f"{layout.VISION}{layout.VECTOR_TABLE_SEPARATOR}"
# ANN query parameters that gave recall@10 >= 0.95 on both IVF_PQ and IVF_HNSW_SQ (measured on
# 100k x 512-d low-rank vectors: defaults gave recall 0.5-0.65);
# on tables without a vector index they are ignored.
DEFAULT_ANN = {"nprobes": 50, "ef": 100, "refine_factor": 10}
QUERY_VECTOR_CACHE = 1024
# Asset rows (filename, MIME type, dates, context) per version of the assets table: a page shows 20
# assets, each read once per version rather than once per request (~2.5 ms of LanceDB query each time).
ASSET_ROW_CACHE = 4096

_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,127}$")
# What a result shows of a segment; read for the page's segments only.
SEGMENT_COLUMNS = [
    "id",
    "segment_type",
    "sequence_number",
    "start_time",
    "end_time",
    "page",
    "text",
    "transcript",
    "context",
    "concepts",
    "thumbnail_path",
    "words",
]
# What similar reads of its page's segment rows (by row id, once the page is known).
_SIMILAR_COLUMNS = [*SEGMENT_COLUMNS, "asset_id"]
# What relevance reads of every candidate (not only the page's): the fields a query can match.
_EVIDENCE_COLUMNS = [
    "id",
    "media_type",
    "filename",
    "text",
    "transcript",
    "context",
    "concepts",
    "semantic_features",
]
# What a search's retrieval queries read with their hits: the evidence relevance weighs for every
# candidate. What only the page shows (times, type, thumbnail, word timings) is read afterwards for the
# page's own segments: at 1,000,000 segments those columns cost 5.9 ms of a full-text leg's 14.9 (100 hits)
# and a page's read of them 2.7 ms; at 100,000, 1.7 ms against 2.3 ms.
HIT_COLUMNS = [*_EVIDENCE_COLUMNS, "asset_id"]
ASSET_COLUMNS = [
    "id",
    "filename",
    "mime_type",
    "media_type",
    "status",
    "duration",
    "created_at",
    "context",
    "thumbnail_path",
    "collection_id",
]


class _NothingMatches(Exception):
    """The filters exclude every row; the answer is an empty page, without querying further."""


@dataclass(frozen=True)
class Constraints:
    """Validated filters, merged from the request and what the query text said."""

    media_types: tuple[str, ...] = ()
    mime_types: tuple[str, ...] = ()
    collection_id: str | None = None
    status: str | None = None
    confidence_min: float | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    duration_min: float | None = None
    duration_max: float | None = None

    @property
    def on_assets(self) -> bool:
        return bool(
            self.mime_types
            or self.collection_id
            or self.status
            or self.created_after
            or self.created_before
            or self.duration_min is not None
            or self.duration_max is not None
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = (
                value.isoformat()
                if isinstance(value, dt.datetime)
                else (list(value) if isinstance(value, tuple) else value)
            )
        return out


class _PinnedTable(FixedSchemaTable):
    """A table checked out at one version: its schema (see `FixedSchemaTable`) and version cannot
    change, so they are read once."""

    @functools.cached_property
    def version(self) -> int:  # type: ignore[override]
        return LanceTable.version.fget(self)  # type: ignore[attr-defined]

    def _execute_query(self, query: Any, *, batch_size: int | None = None, timeout: Any = None) -> Any:
        """Run the query and read all of its batches in one trip through LanceDB's event loop.

        LanceDB's own version makes a trip to start the query and one per batch plus one for the end of
        the stream, each a hand-over between threads that waits for the GIL: under load, milliseconds.
        """
        if self._namespace_client is not None:  # a server-side table: LanceDB's own path
            return super()._execute_query(query, batch_size=batch_size, timeout=timeout)
        inner = self._table

        async def run() -> tuple[pa.Schema, list[pa.RecordBatch]]:
            stream = await inner._execute_query(query, batch_size=batch_size, timeout=timeout)
            return stream.schema, [batch async for batch in stream]

        schema, batches = LOOP.run(run())
        return pa.RecordBatchReader.from_batches(schema, batches)


@dataclass
class _Snapshot:
    """Tables pinned at one version each for the whole request."""

    tables: dict[str, Any]
    versions: tuple[tuple[str, int], ...]
    _derived: dict[Any, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any | None:
        return self.tables.get(name)

    def vision_tables(self) -> dict[str, Any]:
        return {n: t for n, t in self.tables.items() if n.startswith(VISION_PREFIX)}


@dataclass
class _Filter:
    """Where-clauses for one request: on segment rows and on vector-table rows."""

    segments: str | None
    vectors: str | None


class _Explanations(Mapping[str, dict[str, Any]]):
    """Each candidate's explanation, worked out from its evidence the first time it is asked for."""

    def __init__(self, query: relevance.Query, evidence: dict[str, relevance.Evidence]) -> None:
        self._query = query
        self._evidence = evidence
        self._done: dict[str, dict[str, Any]] = {}

    def __getitem__(self, segment_id: str) -> dict[str, Any]:
        if segment_id not in self._done:
            _, explanation = relevance.score_for(self._query, self._evidence[segment_id])
            assert explanation is not None
            self._done[segment_id] = explanation
        return self._done[segment_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._evidence)

    def __len__(self) -> int:
        return len(self._evidence)


class _Rows:
    """The segment rows the retrieval queries returned with their hits, by segment id.

    Each stays in its Arrow table until asked for: relevance converts the evidence columns of the
    candidates, the page the display columns of its own segments only.
    """

    def __init__(self, columns: Sequence[str] = HIT_COLUMNS) -> None:
        self.columns = list(columns)  # what a held row carries; rows read later read these
        self._tables: list[pa.Table] = []
        self._at: dict[str, tuple[int, int]] = {}

    def add(self, table: pa.Table) -> None:
        """Keep the rows of a result that carries every column asked for (others are read by row id later)."""
        if not set(self.columns) <= set(table.column_names):
            return
        index = len(self._tables)
        self._tables.append(table)
        for position, sid in enumerate(table.column("id").to_pylist()):
            self._at.setdefault(sid, (index, position))

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._at

    def dicts(self, segment_ids: Sequence[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        """`columns` of the rows held for `segment_ids` (ids not held are left out), by segment id."""
        by_table: dict[int, list[tuple[str, int]]] = {}
        for sid in dict.fromkeys(segment_ids):
            at = self._at.get(sid)
            if at is not None:
                by_table.setdefault(at[0], []).append((sid, at[1]))
        out: dict[str, dict[str, Any]] = {}
        for index, items in by_table.items():
            taken = self._tables[index].select(columns).take(pa.array([p for _, p in items], pa.int64()))
            out.update(zip([sid for sid, _ in items], taken.to_pylist(), strict=True))
        return out

    def cosines(self, query: np.ndarray, segment_ids: Sequence[str]) -> dict[str, float]:
        """MiniLM cosine of the query with each held row among `segment_ids` that has a text vector."""
        wanted = set(segment_ids)
        out: dict[str, float] = {}
        for table in self._tables:
            if "text_vector" not in table.column_names:
                continue
            ids = table.column("id").to_pylist()
            positions = [i for i, sid in enumerate(ids) if sid in wanted and sid not in out]
            if not positions:
                continue
            part = table.select(["id", "text_vector"]).take(pa.array(positions, pa.int64()))
            out.update({ids[positions[i]]: sim for i, sim in cosine_ranked(part, query, "text_vector")})
        return out


def _finite(value: float, field_name: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FilterError(field_name, "must be a finite number")
    if low is not None and value < low:
        raise FilterError(field_name, f"must be at least {low}")
    if high is not None and value > high:
        raise FilterError(field_name, f"must be at most {high}")
    return float(value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        # An offset that moves the calendar's first or last day past its edge: the edge itself.
        edge = dt.datetime.min if value.year == dt.MINYEAR else dt.datetime.max
        return edge.replace(tzinfo=dt.UTC)


def _media_types(values: Sequence[str], field_name: str) -> tuple[str, ...]:
    allowed = {m.value for m in MediaType}
    out = []
    for value in values:
        if value not in allowed:
            raise FilterError(field_name, f"{value!r} is not one of {sorted(allowed)}")
        if value not in out:
            out.append(value)
    return tuple(out)


def constraints_for(req: SearchRequest, parsed: ParsedQuery) -> Constraints:
    """Validate the request's filters and merge them with the parsed query's (the tighter bound wins)."""
    f = req.filters
    media = _media_types(req.media_types, "media_types") or tuple(parsed.media_types)
    mimes = []
    for mime in f.mime_types:
        if not isinstance(mime, str) or not _MIME_RE.match(mime):
            raise FilterError("filters.mime_types", f"{mime!r} is not a MIME type like image/jpeg")
        mimes.append(mime)
    if f.collection_id is not None and not is_uuid(f.collection_id):
        raise FilterError("filters.collection_id", f"{f.collection_id!r} is not a UUID")
    if f.status is not None and f.status not in {s.value for s in Status}:
        raise FilterError("filters.status", f"{f.status!r} is not one of {[s.value for s in Status]}")
    confidence = None
    if f.confidence_min is not None:
        confidence = _finite(f.confidence_min, "filters.confidence_min", 0.0, 1.0)
    dmin = None if f.duration_min is None else _finite(f.duration_min, "filters.duration_min", 0.0)
    dmax = None if f.duration_max is None else _finite(f.duration_max, "filters.duration_max", 0.0)
    if dmin is not None and dmax is not None and dmin > dmax:
        raise FilterError("filters.duration_min", "is greater than filters.duration_max")
    after, before = _utc(f.created_after), _utc(f.created_before)
    if after and before and after > before:
        raise FilterError("filters.created_after", "is later than filters.created_before")
    if parsed.duration_min is not None:
        dmin = parsed.duration_min if dmin is None else max(dmin, parsed.duration_min)
    if parsed.duration_max is not None:
        dmax = parsed.duration_max if dmax is None else min(dmax, parsed.duration_max)
    if parsed.created_after:
        after = parsed.created_after if after is None else max(after, parsed.created_after)
    if parsed.created_before:
        before = parsed.created_before if before is None else min(before, parsed.created_before)
    return Constraints(
        media_types=media,
        mime_types=tuple(mimes),
        collection_id=f.collection_id.lower() if f.collection_id else None,
        status=f.status,
        confidence_min=confidence,
        created_after=after,
        created_before=before,
        duration_min=dmin,
        duration_max=dmax,
    )


def fts_query(parsed: ParsedQuery, column: str = "search_text") -> FullTextQuery | None:
    """Quoted phrases must all occur (positions); the free text ranks, any term matching."""
    # lancedb's query models are pydantic classes whose defaults mypy cannot see.
    phrases = [PhraseQuery(p, column) for p in parsed.phrases]  # type: ignore[call-arg]
    match = MatchQuery(parsed.text, column) if parsed.text else None  # type: ignore[call-arg]
    if not phrases:
        return match
    if len(phrases) == 1 and match is None:
        return phrases[0]
    clauses: list[tuple[Occur, FullTextQuery]] = [(Occur.MUST, p) for p in phrases]
    if match is not None:
        clauses.append((Occur.SHOULD, match))
    return BooleanQuery(clauses)


def _ids(table: Any, where: str | None, column: str = "id") -> list[str]:
    query = table.search()
    if where:
        query = query.where(where)
    return query.select([column]).limit(None).to_arrow().column(column).to_pylist()


def _id_constraint(column: str, allowed: list[str], universe: Any, universe_column: str) -> str | None:
    """`column IN (allowed)`, or NOT IN the complement when that list is shorter; None when all pass."""
    total = universe.count_rows()
    if not allowed:
        raise _NothingMatches
    if len(allowed) >= total:
        return None
    if len(allowed) <= total - len(allowed):
        return in_list(column, allowed, uuids=True)
    keep = set(allowed)
    excluded = [i for i in _ids(universe, None, universe_column) if i not in keep]
    return f"NOT ({in_list(column, excluded, uuids=True)})"


def _join(clauses: Sequence[str | None]) -> str | None:
    parts = [c for c in clauses if c]
    if not parts:
        return None
    return " AND ".join(f"({c})" for c in parts)


def cosine_ranked(hits: pa.Table, query: np.ndarray, column: str) -> list[tuple[int, float]]:
    """Row positions of the hits with their true cosine similarity, best first.

    An IVF_HNSW_SQ index built for cosine reports `_distance` as squared L2 of unit vectors (twice the
    cosine distance) while unindexed rows report cosine distance, so `_distance` is no similarity scale.
    """
    vectors = hits.column(column).combine_chunks()
    positions = np.flatnonzero(vectors.is_valid().to_numpy(zero_copy_only=False))
    if not len(positions):
        return []
    if len(positions) < len(vectors):
        vectors = vectors.take(pa.array(positions))
    # Arrow to numpy without Python floats: 100 hits x 384 floats as lists cost milliseconds per query.
    matrix = vector_matrix(vectors)
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    sims = (matrix @ np.asarray(query, dtype=np.float32)) / np.maximum(norms, 1e-12)
    order = np.argsort(-sims, kind="stable")
    return [(int(positions[i]), float(sims[i])) for i in order]


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class SearchEngine:
    """Hybrid search and similar-content search over one DataFlux home; shared by REST and MCP."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None,
        graph: GraphReader | None = None,
        *,
        cache_size: int = 256,
        ann_params: dict[str, int] | None = None,
        memory_indexes: bool = True,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.graph = graph
        self.ann_params = dict(DEFAULT_ANN if ann_params is None else ann_params)
        self.cache: ResultCache[SearchResponse] = ResultCache(cache_size)
        # Query vectors per (model version, text): paging and new table versions reuse them.
        self.query_vectors: ResultCache[np.ndarray] = ResultCache(QUERY_VECTOR_CACHE)
        # Legs that need nothing from each other (full text while the query is embedded, asset rows
        # while segment rows load) overlap on these threads; LanceDB releases the GIL while it works.
        # The pool is shared by every request in flight; 8 threads instead of 2 made no measurable
        # difference under 20 concurrent in-process clients (+12 % and -6 % req/s in two runs).
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataflux-search")
        self._db = connect(settings, reader=True)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._pinned: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._asset_cache: OrderedDict[tuple[int | None, str], dict[str, Any]] = OrderedDict()
        self._names: tuple[float, list[str]] | None = None
        self._params: tuple[int, dict[tuple[str, str], SearchParams]] | None = None
        self._shared: tuple[float, _Snapshot] | None = None
        # Row ids by segment id and the assets' display rows, per table version, held in memory once
        # built (see lookup.py); without them every read by id is a LanceDB query.
        self._locators: VersionedIndex[SegmentLocator] | None = None
        self._asset_tables: VersionedIndex[AssetTable] | None = None
        if memory_indexes:
            self._locators = VersionedIndex("segment-locator", SegmentLocator.build)
            self._asset_tables = VersionedIndex("asset-table", AssetTable.builder(ASSET_COLUMNS))

    def warm(self) -> None:
        """Build the in-memory lookups of the tables' current versions now, instead of on the first requests."""
        snap = self._snapshot()
        for index, name in (
            (self._locators, layout.SEGMENTS_TABLE),
            (self._asset_tables, layout.ASSETS_TABLE),
        ):
            table = snap.get(name)
            if index is not None and table is not None:
                index.wait(table, dict(snap.versions)[name])

    def _locator(self, snap: _Snapshot) -> SegmentLocator | None:
        """Row ids by segment id at the snapshot's version of the segments table, once that is built."""
        table = snap.get(layout.SEGMENTS_TABLE)
        if self._locators is None or table is None:
            return None
        return self._locators.get(table, dict(snap.versions)[layout.SEGMENTS_TABLE])

    def _asset_table(self, snap: _Snapshot) -> AssetTable | None:
        table = snap.get(layout.ASSETS_TABLE)
        if self._asset_tables is None or table is None:
            return None
        return self._asset_tables.get(table, dict(snap.versions)[layout.ASSETS_TABLE])

    # --- snapshot ---------------------------------------------------------------------------
    def _table_names(self) -> list[str]:
        # Listing tables is a directory (or S3 LIST) call; reuse it for as long as readers may be stale anyway.
        now = time.monotonic()
        cached = self._names
        if cached is not None and now - cached[0] < self.settings.lance_read_consistency_s:
            return cached[1]
        names = table_names(self._db)
        self._names = (now, names)
        return names

    def _snapshot(self) -> _Snapshot:
        """Pin every table this request may read at its current version.

        Requests within the read-consistency interval share one snapshot: a reader may be that stale
        anyway, and checking each table's latest version costs a round trip per table.
        """
        now = time.monotonic()
        shared = self._shared
        if shared is not None and now - shared[0] < self.settings.lance_read_consistency_s:
            return shared[1]
        snap = self._pin()
        self._shared = (now, snap)
        return snap

    def _pin(self) -> _Snapshot:
        wanted = {
            layout.ASSETS_TABLE,
            layout.SEGMENTS_TABLE,
            layout.COLLECTIONS_TABLE,
            SEARCH_PARAMS_TABLE,
        }
        names = sorted(n for n in self._table_names() if n in wanted or n.startswith(VISION_PREFIX))
        tables: dict[str, Any] = {}
        versions = []
        with self._lock:
            for name in names:
                latest = self._latest.get(name)
                if latest is None:
                    latest = self._latest[name] = self._db.open_table(name)
                version = latest.version
                pinned = self._pinned.get((name, version))
                if pinned is None:
                    pinned = self._db.open_table(name)
                    pinned.checkout(version)
                    pinned.__class__ = _PinnedTable
                    self._pinned[(name, version)] = pinned
                    while len(self._pinned) > 4 * max(len(names), 1):
                        self._pinned.popitem(last=False)
                else:
                    self._pinned.move_to_end((name, version))
                tables[name] = pinned
                versions.append((name, version))
        return _Snapshot(tables=tables, versions=tuple(versions))

    def _models_key(self) -> tuple[Any, ...]:
        if self.registry is None:
            return ("no-registry",)
        clip = self.registry.clip
        return (id(self.registry), clip.space if clip is not None else None)

    # --- filters ----------------------------------------------------------------------------
    def _allowed_assets(self, snap: _Snapshot, c: Constraints) -> list[str] | None:
        """Ids of the assets that pass the asset-level filters (MIME, collection, status, dates, duration)."""
        if not c.on_assets:
            return None
        key = ("assets", c)
        if key in snap._derived:
            return snap._derived[key]
        assets = snap.get(layout.ASSETS_TABLE)
        if assets is None:
            raise _NothingMatches
        clauses = []
        if c.mime_types:
            clauses.append(in_list("mime_type", c.mime_types))
        if c.collection_id:
            clauses.append(self._collection_clause(snap, c.collection_id))
        if c.status:
            clauses.append(f"status = {literal(c.status)}")
        if c.created_after:
            clauses.append(f"created_at >= {literal(c.created_after)}")
        if c.created_before:
            clauses.append(f"created_at < {literal(c.created_before)}")
        if c.duration_min is not None:
            clauses.append(f"duration >= {literal(c.duration_min)}")
        if c.duration_max is not None:
            clauses.append(f"duration <= {literal(c.duration_max)}")
        allowed = _ids(assets, _join(clauses))
        snap._derived[key] = allowed
        return allowed

    def _asset_clause(self, snap: _Snapshot, c: Constraints, column: str = "asset_id") -> str | None:
        """The asset-level filters as a constraint on an asset-id column."""
        allowed = self._allowed_assets(snap, c)
        if allowed is None:
            return None
        return _id_constraint(column, allowed, snap.get(layout.ASSETS_TABLE), "id")

    def _collection_clause(self, snap: _Snapshot, collection_id: str) -> str:
        lit = uuid_literal(collection_id, "filters.collection_id")
        clause = f"collection_id = {lit}"
        collections = snap.get(layout.COLLECTIONS_TABLE)
        if collections is None:
            return clause
        rows = collections.search().where(f"id = {lit}").select(["asset_ids"]).limit(1).to_list()
        members = [m for m in (rows[0]["asset_ids"] or []) if is_uuid(m)] if rows else []
        # Auto-generated collections list their members; user collections are named on the asset row.
        if members:
            return f"{clause} OR {in_list('id', members, uuids=True)}"
        return clause

    def _filter(self, snap: _Snapshot, c: Constraints, *, vectors: bool) -> _Filter:
        key = ("filter", c, vectors)
        if key in snap._derived:
            return snap._derived[key]
        media = in_list("media_type", c.media_types) if c.media_types else None
        asset_clause = self._asset_clause(snap, c)
        confidence = None
        if c.confidence_min is not None:
            confidence = f"confidence_score >= {literal(c.confidence_min)}"
        segments_where = _join([media, asset_clause, confidence])
        vectors_where = _join([media, asset_clause])
        if vectors and confidence:
            # Vector tables carry no confidence column: narrow them to the segments that pass.
            segments = snap.get(layout.SEGMENTS_TABLE)
            if segments is None:
                raise _NothingMatches
            allowed = _ids(segments, segments_where)
            vectors_where = _join([vectors_where, _id_constraint("segment_id", allowed, segments, "id")])
        result = _Filter(segments=segments_where, vectors=vectors_where)
        snap._derived[key] = result
        return result

    def _search_params(self, snap: _Snapshot) -> dict[tuple[str, str], SearchParams]:
        """Tuned ANN parameters stored by index maintenance, read once per version of their table."""
        version = dict(snap.versions).get(SEARCH_PARAMS_TABLE)
        if version is None:
            return {}
        with self._lock:
            cached = self._params
            if cached is not None and cached[0] == version:
                return cached[1]
        params = load_search_params(self._db)
        with self._lock:
            self._params = (version, params)
        return params

    def _ann(self, snap: _Snapshot, table: str, column: str, query: Any, k: int) -> Any:
        """A vector query with the tuned ANN parameters for fetching k neighbours."""
        params = self._search_params(snap).get((table, column))
        if params is not None:
            query = apply_search_params(query, params)
            ef = params.ef if params.index_type != "exact" else None
        else:
            # No tuned parameters yet (an index built outside maintenance): thorough settings, not the defaults.
            for name in ("nprobes", "refine_factor"):
                if self.ann_params.get(name):
                    query = getattr(query, name)(int(self.ann_params[name]))
            ef = self.ann_params.get("ef")
        if ef:
            # HNSW refuses ef < k; parameters are tuned at k=10 while retrievers fetch more candidates.
            query = query.ef(max(int(ef), k))
        return query

    # --- search -----------------------------------------------------------------------------
    def search(self, req: SearchRequest) -> SearchResponse:
        """Answer a search request from one snapshot of the stores (cached per table versions)."""
        started = time.perf_counter()
        if not isinstance(req.query, str) or "\x00" in req.query:
            raise FilterError("query", "contains a NUL character")
        if not req.query.strip():
            raise FilterError("query", "must not be empty")
        if len(req.query) > MAX_QUERY_CHARS:
            raise FilterError("query", f"is longer than {MAX_QUERY_CHARS} characters")
        if req.limit < 1:
            raise FilterError("limit", "must be at least 1")
        if req.offset < 0:
            raise FilterError("offset", "must not be negative")
        if req.min_score is not None:
            _finite(
                req.min_score, "min_score", 0.0, 1.0
            )  # checked before the library is read: same answer when empty
        limit = min(req.limit, MAX_SEARCH_LIMIT)
        if req.offset + limit > MAX_WINDOW:
            raise FilterError("offset", f"offset + limit must be at most {MAX_WINDOW}")
        # Minute resolution keeps relative dates ("last week") stable, so repeated queries hit the cache.
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        parsed = parse_query(req.query, now)
        c = constraints_for(req, parsed)
        understood = parsed.to_dict()
        understood["media_types"] = list(c.media_types)
        understood["filters"] = c.to_dict()
        if parsed.similar_to:
            return self._similar(
                parsed.similar_to,
                SIMILAR_THRESHOLD,
                limit,
                req.offset,
                c,
                understood,
                req.include_segments,
                started,
            )
        snap = self._snapshot()
        key = (
            "search",
            msgspec.json.encode(req),
            msgspec.json.encode(understood),
            snap.versions,
            self._models_key(),
        )
        cached = self.cache.get(key)
        if cached is not None:
            return msgspec.structs.replace(cached, took_ms=_elapsed_ms(started))
        try:
            response = self._search(
                snap, parsed, c, limit, req.offset, req.include_segments, understood, req.min_score
            )
        except _NothingMatches:
            response = SearchResponse(
                results=[], total=0, took_ms=0, offset=req.offset, limit=limit, understood=understood
            )
        self.cache.put(key, response)
        return msgspec.structs.replace(response, took_ms=_elapsed_ms(started))

    def _search(
        self,
        snap: _Snapshot,
        parsed: ParsedQuery,
        c: Constraints,
        limit: int,
        offset: int,
        include_segments: bool,
        understood: dict[str, Any],
        min_score: float | None = None,
    ) -> SearchResponse:
        retrievers: list[str] = []
        notes: list[str] = []
        understood["retrievers"] = retrievers
        understood["notes"] = notes
        segments = snap.get(layout.SEGMENTS_TABLE)
        if not parsed.has_text:
            return self._browse(snap, c, limit, offset, understood)
        if segments is None:
            raise _NothingMatches
        k = min(max(4 * (offset + limit), 100), MAX_WINDOW)
        where = self._filter(snap, c, vectors=False).segments
        # Candidates come with their rows (`_Rows`): relevance and the page need no second read.
        asset_of: dict[str, str] = {}
        rowid_of: dict[str, int] = {}
        ranked: dict[str, list[str]] = {}
        rows = _Rows()

        # Full text needs no query vector: it runs on another thread while the query is embedded.
        # With a text model its hits bring their text vectors too (relevance weighs their words by them).
        fts_columns = [*HIT_COLUMNS, "text_vector"] if self.registry is not None else HIT_COLUMNS
        fts_hits = self._pool.submit(self._fts_hits, segments, parsed, where, k, fts_columns)
        text = parsed.semantic_text
        text_ranked: list[str] | None = None
        text_sim: dict[str, float] = {}
        vector: np.ndarray | None = None
        if self.registry is None:
            notes.append("semantic search is off: no model registry is loaded, so only full-text search ran")
        else:
            vector = self._query_vector("text", text)
            query = segments.search(vector, vector_column_name="text_vector").distance_type("cosine")
            query = self._ann(snap, layout.SEGMENTS_TABLE, "text_vector", query, k)
            if where:
                query = query.where(where, prefilter=True)
            # Ids and vectors only: a vector query that also reads the text columns costs about three
            # times the CPU of reading the rows it lacks by row id afterwards (`_read_missing`).
            hits = query.select(["id", "asset_id", "text_vector", "_distance"]).with_row_id(True)
            table = hits.limit(k).to_arrow()
            scored = [
                (i, sim)
                for i, sim in cosine_ranked(table, vector, "text_vector")
                if sim >= TEXT_MIN_SIMILARITY
            ]
            text_ranked = _remember(table, [i for i, _ in scored], asset_of, rowid_of)
            text_sim = {sid: sim for sid, (_, sim) in zip(text_ranked, scored, strict=True)}
        try:
            fts = fts_hits.result()
        except ValueError as exc:
            if "position" in str(exc):
                raise Unavailable(
                    "phrase_index_missing",
                    "quoted phrases need the full-text index built with positions; run index maintenance",
                    field="query",
                ) from exc
            raise
        if text_ranked is not None:
            ranked["text"] = text_ranked
            retrievers.append("text_vector")
        ranked["fts"] = _remember(fts, None, asset_of, rowid_of)
        rows.add(fts)
        retrievers.append("full_text")

        vision_sim: dict[str, float] = {}
        self._vision_leg(snap, c, text, k, ranked, asset_of, rowid_of, rows, retrievers, notes, vision_sim)

        if parsed.phrases:
            # Quoted phrases are requirements: other retrievers only re-rank the rows that contain them.
            required = set(ranked["fts"])
            ranked = {name: [i for i in ids if i in required] for name, ids in ranked.items()}
        if self.graph is not None:
            self._graph_leg(snap, c, ranked, asset_of, retrievers)
        terms = rank.query_terms(" ".join([parsed.text, *parsed.phrases]))
        # Calibrated relevance per candidate from its own evidence (rank fusion only orders ties).
        fused = rank.reciprocal_rank_fusion(ranked, {"graph": GRAPH_WEIGHT})
        floor = relevance.RELEVANCE_FLOOR if min_score is None else _finite(min_score, "min_score", 0.0, 1.0)
        understood["min_score"] = floor
        scores, explanations = self._relevance(
            snap,
            list(fused),
            rowid_of,
            rows,
            terms,
            " ".join([parsed.semantic_text, *parsed.phrases]),
            text_sim,
            vision_sim,
            vector,
        )
        kept_scores = {sid: v for sid, v in scores.items() if v >= floor and (v > 0 or floor == 0)}
        groups = rank.group_by_asset(kept_scores, asset_of)
        groups.sort(key=lambda g: (-g[1], -fused.get(g[2][0][0], 0.0), g[0]))
        results = self._results(
            snap, groups, rowid_of, rows, offset, limit, include_segments, terms, parsed.phrases, explanations
        )
        return SearchResponse(
            results=results, total=len(groups), took_ms=0, offset=offset, limit=limit, understood=understood
        )

    def _query_vector(self, kind: str, text: str) -> np.ndarray:
        """The query text embedded for the text space ("text") or CLIP's image space ("vision")."""
        assert self.registry is not None
        if kind == "text":
            key: tuple[Any, ...] = ("text", self.registry.text.version, text)
        else:
            clip = self.registry.clip
            key = ("vision", clip.space if clip is not None else None, text)
        vector = self.query_vectors.get(key)
        if vector is None:
            if kind == "text":
                vector = np.asarray(self.registry.embed_texts([text])[0], dtype=np.float32)
            else:
                vector = np.asarray(self.registry.embed_query_for_vision(text), dtype=np.float32)
            vector.setflags(write=False)  # shared by every request that asks the same text
            self.query_vectors.put(key, vector)
        return vector

    @staticmethod
    def _fts_hits(
        segments: Any, parsed: ParsedQuery, where: str | None, k: int, columns: list[str]
    ) -> pa.Table:
        query = segments.search(fts_query(parsed), query_type="fts")
        if where:
            query = query.where(where, prefilter=True)
        return query.select([*columns, "_score"]).with_row_id(True).limit(k).to_arrow()

    def _vision_leg(
        self,
        snap: _Snapshot,
        c: Constraints,
        text: str,
        k: int,
        ranked: dict[str, list[str]],
        asset_of: dict[str, str],
        rowid_of: dict[str, int],
        rows: _Rows,
        retrievers: list[str],
        notes: list[str],
        vision_sim: dict[str, float] | None = None,
    ) -> None:
        if self.registry is None:
            return
        clip = self.registry.clip
        if clip is None:
            reasons = "; ".join(self.registry.degraded)
            notes.append(f"text-to-image search is off: the CLIP profile is not loaded ({reasons})")
            return
        vector = self._query_vector("vision", text)
        name = layout.vector_table_name("vision", clip.space)
        table = snap.get(name)
        if table is None:
            notes.append(f"text-to-image search found no vector table {name!r} yet")
            return
        where = self._filter(snap, c, vectors=True).vectors
        query = table.search(vector, vector_column_name="vector")
        query = self._ann(snap, name, "vector", query, k)
        query = query.distance_type("cosine")
        if where:
            query = query.where(where, prefilter=True)
        hits = query.select(["segment_id", "asset_id", "vector", "_distance"]).limit(k).to_arrow()
        found = hits.column("segment_id").to_pylist()
        pairs = cosine_ranked(hits, vector, "vector")
        ids = [found[i] for i, _ in pairs]
        if vision_sim is not None:
            vision_sim.update({found[i]: sim for i, sim in pairs})
        # A vector whose segment row is gone (deleted or reprocessed) is not a result.
        present = self._locate_segments(snap, ids, asset_of, rowid_of, rows)
        ranked["vision"] = [sid for sid in ids if sid in present]
        retrievers.append("vision_vector")

    def _graph_leg(
        self,
        snap: _Snapshot,
        c: Constraints,
        ranked: dict[str, list[str]],
        asset_of: dict[str, str],
        retrievers: list[str],
    ) -> None:
        """Assets the published graph links to the top hits (duplicates, similar), as one more ranked list."""
        assert self.graph is not None
        seeds: list[str] = []
        for ids in ranked.values():
            for sid in ids[:10]:
                asset_id = asset_of.get(sid)
                if asset_id and asset_id not in seeds:
                    seeds.append(asset_id)
        if not seeds:
            return
        if not self.graph.available():
            return
        related: list[str] = []
        for neighbours in related_assets(self.graph, seeds).values():
            for item in neighbours:
                if (
                    is_uuid(item["asset_id"])
                    and item["asset_id"] not in related
                    and item["asset_id"] not in seeds
                ):
                    related.append(item["asset_id"])
        assets = snap.get(layout.ASSETS_TABLE)
        if not related or assets is None:
            return
        # Graph neighbours pass through the same filters as every other hit.
        where = _join(
            [
                in_list("id", related, uuids=True),
                in_list("media_type", c.media_types) if c.media_types else None,
            ]
        )
        allowed = set(_ids(assets, where))
        passing = self._allowed_assets(snap, c)
        if passing is not None:
            allowed &= set(passing)
        keys = []
        for asset_id in related:
            if asset_id in allowed:
                key = f"asset:{asset_id}"
                asset_of[key] = asset_id
                keys.append(key)
        ranked["graph"] = keys
        retrievers.append("graph")

    def _browse(
        self, snap: _Snapshot, c: Constraints, limit: int, offset: int, understood: dict[str, Any]
    ) -> SearchResponse:
        """No text to match: the assets that pass the filters, newest first."""
        understood["retrievers"].append("filters_only")
        assets = snap.get(layout.ASSETS_TABLE)
        if assets is None:
            raise _NothingMatches
        clauses: list[str | None] = [in_list("media_type", c.media_types) if c.media_types else None]
        clauses.append(self._asset_clause(snap, c, "id"))
        if c.confidence_min is not None:
            clauses.append(f"confidence_score >= {literal(c.confidence_min)}")
        query = assets.search()
        where = _join(clauses)
        if where:
            query = query.where(where)
        rows = query.select(ASSET_COLUMNS).limit(None).to_list()
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        rows.sort(key=lambda r: (r["created_at"] or epoch, r["id"]), reverse=True)
        results = [
            SearchResult(
                id=row["id"],
                type=row["media_type"] or "unknown",
                score=1.0,
                metadata=_asset_metadata(row),
                segments=[],
                highlights=[],
                concepts=[],
            )
            for row in rows[offset : offset + limit]
        ]
        return SearchResponse(
            results=results, total=len(rows), took_ms=0, offset=offset, limit=limit, understood=understood
        )

    def _locate_segments(
        self,
        snap: _Snapshot,
        segment_ids: Sequence[str],
        asset_of: dict[str, str],
        rowid_of: dict[str, int],
        rows: _Rows,
    ) -> set[str]:
        """The ids that name a segment row in the snapshot; records their asset and row id, and keeps
        their rows in `rows` (search scores every candidate)."""
        missing = [sid for sid in segment_ids if sid not in rowid_of]
        locator = self._locator(snap)
        segments = snap.get(layout.SEGMENTS_TABLE)
        if locator is not None and segments is not None:
            located = locator.row_ids(missing)
            if located:
                # The row ids are known: one read by row id instead of a lookup of the ids.
                found = segments.take_row_ids(sorted(located.values()))
                found = found.select([*rows.columns, "text_vector"]).to_arrow()
                _remember(found, None, asset_of, {})
                rows.add(found)
                for sid, row_id in located.items():
                    rowid_of.setdefault(sid, row_id)
            return {sid for sid in segment_ids if sid in rowid_of}
        found = _segment_rows(snap, missing, [*rows.columns, "text_vector"])
        if found is not None:
            _remember(found, None, asset_of, rowid_of)
            rows.add(found)
        return {sid for sid in segment_ids if sid in rowid_of}

    def _relevance(
        self,
        snap: _Snapshot,
        candidates: list[str],
        rowid_of: dict[str, int],
        rows: _Rows,
        terms: list[str],
        query: str,
        text_sim: dict[str, float],
        vision_sim: dict[str, float],
        query_vector: np.ndarray | None = None,
    ) -> tuple[dict[str, float], _Explanations]:
        """Relevance of every candidate segment, from its own row and leg similarities, and their
        explanations (each worked out when asked for: the page shows a few of 100-200 candidates)."""
        located = [sid for sid in candidates if sid in rowid_of]
        q = relevance.prepare(terms, query)
        if not located:
            return {}, _Explanations(q, {})
        # Hits of the vector leg have their cosine already: their rows are read without the vector.
        vectors = query_vector is not None and any(sid not in rows and sid not in text_sim for sid in located)
        self._read_missing(snap, located, rowid_of, rows, vectors=vectors)
        if query_vector is not None:
            # Candidates the vector leg did not return (full-text or vision hits) still have a meaning:
            # their cosine lets relevance weigh the words they matched (see relevance.word_agreement).
            text_sim = {**rows.cosines(query_vector, located), **text_sim}
        evidence = rows.dicts(located, _EVIDENCE_COLUMNS)
        scores: dict[str, float] = {}
        evidence_of: dict[str, relevance.Evidence] = {}
        for sid in candidates:
            row = evidence.get(sid)
            if row is None:
                continue
            fields = relevance.segment_fields(row)
            labels = relevance.stored_labels(row)
            # Image labels are judged by the labels leg (with their confidence), not as concept words.
            label_names = {str(x["name"]) for x in labels}
            fields["concepts"] = " ".join(c for c in row.get("concepts") or [] if c not in label_names)
            ev = relevance.Evidence(
                text_cosine=text_sim.get(sid),
                vision_cosine=vision_sim.get(sid),
                fields=fields,
                labels=labels,
            )
            scores[sid], _ = relevance.score_for(q, ev, explain=False)
            evidence_of[sid] = ev
        return scores, _Explanations(q, evidence_of)

    @staticmethod
    def _read_missing(
        snap: _Snapshot, segment_ids: list[str], rowid_of: dict[str, int], rows: _Rows, vectors: bool = False
    ) -> None:
        """Rows of located hits that no retrieval query brought, read by row id from the same version."""
        segments = snap.get(layout.SEGMENTS_TABLE)
        # In row order: Lance reads sorted row ids ~17 % faster (12.1 against 14.6 ms for 100 rows at 1M).
        row_ids = sorted({rowid_of[sid] for sid in segment_ids if sid not in rows and sid in rowid_of})
        if row_ids and segments is not None:
            columns = [*rows.columns, "text_vector"] if vectors else rows.columns
            rows.add(segments.take_row_ids(row_ids).select(columns).to_arrow())

    def _asset_rows(self, snap: _Snapshot, asset_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The page's asset rows; rows of this version of the assets table read before are reused."""
        assets = snap.get(layout.ASSETS_TABLE)
        if not asset_ids or assets is None:
            return {}
        held = self._asset_table(snap)
        if held is not None:
            return held.rows(asset_ids)
        version = dict(snap.versions).get(layout.ASSETS_TABLE)
        out: dict[str, dict[str, Any]] = {}
        missing = []
        with self._lock:
            for asset_id in asset_ids:
                row = self._asset_cache.get((version, asset_id))
                if row is None:
                    missing.append(asset_id)
                else:
                    self._asset_cache.move_to_end((version, asset_id))
                    out[asset_id] = row
        if missing:
            found = (
                assets.search()
                .where(in_list("id", missing, uuids=True))
                .select(ASSET_COLUMNS)
                .limit(len(missing))
                .to_list()
            )
            with self._lock:
                for row in found:
                    out[row["id"]] = row
                    self._asset_cache[(version, row["id"])] = row
                while len(self._asset_cache) > ASSET_ROW_CACHE:
                    self._asset_cache.popitem(last=False)
        return out

    def _results(
        self,
        snap: _Snapshot,
        groups: list[tuple[str, float, list[tuple[str, float]]]],
        rowid_of: dict[str, int],
        hit_rows: _Rows,
        offset: int,
        limit: int,
        include_segments: bool,
        terms: list[str],
        phrases: Sequence[str],
        explanations: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[SearchResult]:
        page = groups[offset : offset + limit]
        if not page or snap.get(layout.ASSETS_TABLE) is None:
            return []
        asset_rows = self._pool.submit(self._asset_rows, snap, [asset_id for asset_id, _, _ in page])
        shown = [sid for _, _, hits in page for sid, _ in hits if sid in rowid_of]
        self._read_missing(snap, shown, rowid_of, hit_rows)  # similar's hits: read for the page only
        rows = hit_rows.dicts(shown, [c for c in SEGMENT_COLUMNS if c in hit_rows.columns])
        page_only = [c for c in SEGMENT_COLUMNS if c not in hit_rows.columns]
        segments = snap.get(layout.SEGMENTS_TABLE)
        if page_only and shown and segments is not None:
            # A search's hits came with their evidence only: what the page shows besides is read for
            # the page's segments alone, in one read by row id.
            ids = sorted({rowid_of[sid] for sid in rows})
            extra = segments.take_row_ids(ids).select(["id", *page_only]).to_arrow()
            for row in extra.to_pylist():
                rows[row["id"]].update(row)
        by_id = asset_rows.result()
        results = []
        for asset_id, score, hits in page:
            asset = by_id.get(asset_id)
            if asset is None:
                continue  # segments of an asset deleted after they were indexed
            segment_hits: list[SegmentHit] = []
            highlights: list[str] = []
            concepts: list[str] = []
            for segment_id, seg_score in hits:
                row = rows.get(segment_id)
                if row is None:
                    continue
                body = row.get("text") or row.get("transcript") or row.get("context")
                found_sentences = rank.highlight_sentences(body, terms, phrases)
                for sentence in found_sentences:
                    if sentence not in highlights and len(highlights) < 3:
                        highlights.append(sentence)
                for concept in row.get("concepts") or []:
                    if concept not in concepts:
                        concepts.append(concept)
                segment_hits.append(
                    SegmentHit(
                        id=segment_id,
                        segment_type=row.get("segment_type"),
                        sequence_number=row.get("sequence_number"),
                        start_time=row.get("start_time"),
                        end_time=row.get("end_time"),
                        page=row.get("page"),
                        score=round(seg_score, 4),
                        text_snippet=found_sentences[0] if found_sentences else rank.snippet(body),
                        thumbnail_url=segment_thumbnail_url(segment_id)
                        if row.get("thumbnail_path")
                        else None,
                        matches=rank.matched_words(row.get("words"), terms),
                        explanation=(explanations or {}).get(segment_id, {}),
                    )
                )
            if not highlights and segment_hits and segment_hits[0].text_snippet:
                # A semantic match shares meaning, not words: show the best segment's text instead.
                highlights.append(segment_hits[0].text_snippet)
            results.append(
                SearchResult(
                    id=asset_id,
                    type=asset.get("media_type") or "unknown",
                    score=round(score, 4),
                    metadata=_asset_metadata(asset),
                    segments=segment_hits if include_segments else [],
                    highlights=highlights,
                    concepts=concepts[:20],
                    explanation=(explanations or {}).get(hits[0][0], {}),
                )
            )
        return results

    # --- similar ----------------------------------------------------------------------------
    def similar(
        self,
        entity_id: str,
        threshold: float = SIMILAR_THRESHOLD,
        limit: int = 10,
        media_types: list[str] | None = None,
    ) -> SearchResponse:
        """Assets whose vectors lie near an asset's or segment's own (cosine similarity >= threshold)."""
        started = time.perf_counter()
        if limit < 1:
            raise FilterError("limit", "must be at least 1")
        c = Constraints(media_types=_media_types(media_types or [], "media_types"))
        understood: dict[str, Any] = {"similar_to": entity_id, "media_types": list(c.media_types)}
        return self._similar(
            entity_id, threshold, min(limit, MAX_SIMILAR_LIMIT), 0, c, understood, True, started
        )

    def _similar(
        self,
        entity_id: str,
        threshold: float,
        limit: int,
        offset: int,
        c: Constraints,
        understood: dict[str, Any],
        include_segments: bool,
        started: float,
    ) -> SearchResponse:
        if not isinstance(entity_id, str) or not is_uuid(entity_id):
            raise FilterError("entity_id", f"{entity_id!r} is not a UUID")
        entity_id = entity_id.lower()
        threshold = _finite(threshold, "threshold", 0.0, 1.0)
        understood["threshold"] = threshold
        snap = self._snapshot()
        key = ("similar", entity_id, threshold, limit, offset, c, include_segments, snap.versions)
        cached = self.cache.get(key)
        if cached is not None:
            return msgspec.structs.replace(cached, took_ms=_elapsed_ms(started))
        kind, own_asset, queries = self._entity_vectors(snap, entity_id)
        understood["entity_type"] = kind
        understood["spaces"] = [name for name, _, _ in queries]
        if not queries:
            understood["notes"] = [f"the {kind} has no vectors yet, so nothing can be compared with it"]
        k = min(max(10 * (offset + limit), 100), MAX_WINDOW)
        scores: dict[str, float] = {}
        asset_of: dict[str, str] = {}
        rowid_of: dict[str, int] = {}
        rows = _Rows(_SIMILAR_COLUMNS)
        not_self = f"asset_id != {uuid_literal(own_asset, 'entity_id')}"
        wheres: list[str | None] = []
        try:
            for name, _, _ in queries:
                in_segments = name == layout.SEGMENTS_TABLE
                flt = self._filter(snap, c, vectors=not in_segments)
                wheres.append(_join([flt.segments if in_segments else flt.vectors, not_self]))
        except _NothingMatches:
            queries, wheres = [], []
        # One nearest-neighbour query per space, concurrently, each folded in as it completes (the
        # outcome does not depend on the order). A vision space's task also locates the segment rows of
        # its hits, so that lookup overlaps the other spaces' queries instead of following them.
        futures = {
            self._pool.submit(self._space_hits, snap, name, column, vector, where, k, threshold): name
            for (name, column, vector), where in zip(queries, wheres, strict=True)
        }
        for future in as_completed(futures):
            hits, ids, kept, located = future.result()
            for position, similarity in kept:
                scores[ids[position]] = max(scores.get(ids[position], -1.0), similarity)
            if futures[future] == layout.SEGMENTS_TABLE:  # text vectors: the hits are segment rows
                _remember(hits, [position for position, _ in kept], asset_of, rowid_of)
            elif located is not None:
                _remember(located, None, asset_of, rowid_of)
        groups = rank.group_by_asset({s: v for s, v in scores.items() if s in asset_of}, asset_of)
        results = self._results(snap, groups, rowid_of, rows, offset, limit, include_segments, [], [])
        response = SearchResponse(
            results=results, total=len(groups), took_ms=0, offset=offset, limit=limit, understood=understood
        )
        self.cache.put(key, response)
        return msgspec.structs.replace(response, took_ms=_elapsed_ms(started))

    def _space_hits(
        self,
        snap: _Snapshot,
        name: str,
        column: str,
        vector: np.ndarray,
        where: str | None,
        k: int,
        threshold: float,
    ) -> tuple[pa.Table, list[str], list[tuple[int, float]], pa.Table | None]:
        """One space's neighbours: the hits, their segment ids, the (position, cosine) of those at or
        above the threshold, best first, and for a vision space the id, asset and row id of the segment
        row of each of those; a vector whose segment row is gone (deleted or reprocessed) has none, and
        is no result."""
        hits = self._neighbours(snap, name, column, vector, where, k)
        in_segments = name == layout.SEGMENTS_TABLE
        ids = hits.column("id" if in_segments else "segment_id").to_pylist()
        kept = []
        for position, similarity in cosine_ranked(hits, vector, column):
            if similarity < threshold:
                break  # best first
            kept.append((position, similarity))
        if in_segments:
            return hits, ids, kept, None
        wanted = [ids[position] for position, _ in kept]
        locator = self._locator(snap)
        if locator is None:
            return hits, ids, kept, _segment_rows(snap, wanted, ["id", "asset_id"])
        # The segment rows that still exist at the snapshot's version, from the in-memory locator; a
        # segment id names one asset, so the vector row's asset_id is its segment's.
        row_of = locator.row_ids(wanted)
        assets = hits.column("asset_id").to_pylist()
        present = [position for position, _ in kept if ids[position] in row_of]
        located = pa.table(
            {
                "id": pa.array([ids[p] for p in present], pa.string()),
                "asset_id": pa.array([assets[p] for p in present], pa.string()),
                "_rowid": pa.array([row_of[ids[p]] for p in present], pa.uint64()),
            }
        )
        return hits, ids, kept, located

    def _neighbours(
        self, snap: _Snapshot, name: str, column: str, vector: np.ndarray, where: str | None, k: int
    ) -> pa.Table:
        """The k nearest rows of one vector column, with their vectors (for true cosine)."""
        table = snap.get(name)
        if table is None:
            raise KeyError(f"table {name} is not in the pinned snapshot")
        query = table.search(vector, vector_column_name=column).distance_type("cosine")
        query = self._ann(snap, name, column, query, k)
        if where:
            query = query.where(where, prefilter=True)
        in_segments = name == layout.SEGMENTS_TABLE
        query = query.select(["id" if in_segments else "segment_id", "asset_id", column, "_distance"])
        # Row ids of segment rows let the page read them without an id lookup.
        return query.with_row_id(in_segments).limit(k).to_arrow()

    def _entity_vectors(
        self, snap: _Snapshot, entity_id: str
    ) -> tuple[str, str, list[tuple[str, str, np.ndarray]]]:
        """Whether the id names a segment or an asset, its asset, and its query vector per table."""
        lit = uuid_literal(entity_id, "entity_id")
        vision = sorted(snap.vision_tables().items())
        # Most ids name segments: read their vision vectors while the segment row is looked up.
        as_segment = self._pool.submit(self._vision_vectors, vision, f"segment_id = {lit}")
        segments = snap.get(layout.SEGMENTS_TABLE)
        row = None
        locator = self._locator(snap)
        if segments is not None and locator is not None:
            at = locator.row_ids([entity_id])
            if at:
                row = (
                    segments.take_row_ids(list(at.values())).select(["asset_id", "text_vector"]).to_list()[0]
                )
        elif segments is not None:
            found = (
                segments.search().where(f"id = {lit}").select(["asset_id", "text_vector"]).limit(1).to_list()
            )
            row = found[0] if found else None
        queries: list[tuple[str, str, np.ndarray]] = []
        if row is not None:
            kind, own_asset = "segment", row["asset_id"]
            if row["text_vector"] is not None:
                queries.append(
                    (layout.SEGMENTS_TABLE, "text_vector", np.asarray(row["text_vector"], np.float32))
                )
            queries.extend(as_segment.result())
        else:
            assets = snap.get(layout.ASSETS_TABLE)
            exists = assets is not None and assets.count_rows(f"id = {lit}") > 0
            if not exists:
                raise NotFound("not_found", f"no asset or segment has the id {entity_id}", field="entity_id")
            kind, own_asset = "asset", entity_id
            if segments is not None:
                vectors = (
                    segments.search()
                    .where(f"asset_id = {lit} AND text_vector IS NOT NULL")
                    .select(["text_vector"])
                    .limit(None)
                    .to_arrow()
                )
                if vectors.num_rows:
                    stacked = np.stack(vectors.column("text_vector").to_numpy(zero_copy_only=False))
                    # The asset's centroid: one query per space however many segments it has.
                    queries.append((layout.SEGMENTS_TABLE, "text_vector", _normalise(stacked.mean(0))))
            queries.extend(self._vision_vectors(vision, f"asset_id = {lit}"))
        return kind, own_asset, queries

    @staticmethod
    def _vision_vectors(vision: list[tuple[str, Any]], where: str) -> list[tuple[str, str, np.ndarray]]:
        """Per vision table, the mean of the rows' vectors that pass `where` (tables without any are left out)."""
        queries = []
        for name, table in vision:
            found = table.search().where(where).select(["vector"]).limit(None).to_arrow()
            if found.num_rows:
                stacked = np.stack(found.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
                queries.append((name, "vector", _normalise(stacked.mean(0))))
        return queries


def _segment_rows(snap: _Snapshot, segment_ids: Sequence[str], columns: Sequence[str]) -> pa.Table | None:
    """`columns` (and the row id) of the segment rows these ids name in the snapshot; None when no id
    can name one (none given, none a UUID, or no segments table)."""
    wanted = [sid for sid in dict.fromkeys(segment_ids) if is_uuid(sid)]
    segments = snap.get(layout.SEGMENTS_TABLE)
    if not wanted or segments is None:
        return None
    return (
        segments.search()
        .where(in_list("id", wanted, uuids=True))
        .select(list(columns))
        .with_row_id(True)
        .limit(len(wanted))
        .to_arrow()
    )


def _remember(
    hits: pa.Table,
    positions: Sequence[int] | None,
    asset_of: dict[str, str],
    rowid_of: dict[str, int],
    id_column: str = "id",
) -> list[str]:
    """The segment ids of the hits at `positions` (all, in order, when None); records asset and row id."""
    ids = hits.column(id_column).to_pylist()
    assets = hits.column("asset_id").to_pylist()
    rowids = hits.column("_rowid").to_pylist() if "_rowid" in hits.column_names else None
    out = []
    for i in range(len(ids)) if positions is None else positions:
        sid = ids[i]
        asset_of.setdefault(sid, assets[i])
        if rowids is not None:
            rowid_of.setdefault(sid, rowids[i])
        out.append(sid)
    return out


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _asset_metadata(row: dict[str, Any]) -> dict[str, Any]:
    created = row.get("created_at")
    return {
        "filename": row.get("filename"),
        "mime_type": row.get("mime_type"),
        "duration": row.get("duration"),
        "created_at": created.isoformat() if isinstance(created, dt.datetime) else created,
        "context": row.get("context"),
        "thumbnail_url": asset_thumbnail_url(row["id"]) if row.get("thumbnail_path") else None,
        "collection_id": row.get("collection_id"),
        "status": row.get("status"),
    }
