"""The graph build: catalog rows and per-file contributions in, one Kuzu snapshot out.

A publication copies the live snapshot and applies only what changed since it was built (assets
added, reprocessed, deleted or whose catalog row changed; collections), so its cost follows the
change, not the library. It rebuilds the whole graph with bulk COPY into a fresh snapshot when there
is nothing to copy from or most of the library changed. Both give the same graph, table for table
(`tests/test_graph_incremental.py`): each snapshot records what it was built from (`schema.BOOKKEEPING_DDL`).
Readers never see a half-applied change: either way the snapshot is published with a pointer swap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import kuzu
import polars as pl
import pyarrow as pa

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import table_names
from dataflux_pipelines.duplicates import duplicate_groups, shared_segments
from dataflux_pipelines.graph.contrib import fetch_contributions, list_contributions
from dataflux_pipelines.graph.schema import (
    BOOKKEEPING_DDL,
    BOOKKEEPING_TABLES,
    DDL,
    FORMAT_ROW,
    GRAPH_FORMAT,
    NODE_TYPES,
    REL_PAIRS,
    REL_TYPES,
)
from dataflux_pipelines.graph.store import (
    READER_BUFFER_POOL,
    Snapshot,
    Tombstone,
    contrib_key,
    live_snapshot,
    publish_snapshot,
    read_tombstones,
    remove_reflected_tombstones,
)
from dataflux_pipelines.identity import is_uuid
from dataflux_pipelines.lance_sql import in_list
from dataflux_pipelines.objectstore import ObjectInfo, ObjectStore
from dataflux_pipelines.published import GRAPH, Pointer, is_remote, next_version, publish_file
from dataflux_pipelines.records import Status
from dataflux_pipelines.settings import Settings


@dataclass
class GraphInputs:
    """Everything one snapshot is built from."""

    assets: pl.DataFrame  # id, filename, media_type, mime_type, status, duration, collection_id, created_at
    segments: pl.DataFrame  # id, asset_id, segment_type, sequence_number, start_time, end_time, page
    collections: pl.DataFrame  # id, name, auto_generated, asset_ids
    edges: pl.DataFrame  # kind, src, dst, score, modality, spans (contributions)
    contributions: dict[str, ObjectInfo] = field(default_factory=dict)  # listings of those read: the manifest


@dataclass
class BuildReport:
    nodes: dict[str, int] = field(default_factory=dict)
    relations: dict[str, int] = field(default_factory=dict)
    top_concepts: list[tuple[str, int]] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)
    dropped_edges: int = 0


_ASSET_COLS = [
    "id",
    "filename",
    "media_type",
    "mime_type",
    "status",
    "duration",
    "collection_id",
    "created_at",
]
_SEGMENT_COLS = ["id", "asset_id", "segment_type", "sequence_number", "start_time", "end_time", "page"]
_PAIR_KINDS = ("SIMILAR_TO", "DUPLICATE_OF")
_PENDING = (Status.QUEUED.value, Status.PROCESSING.value)
_EDGE_SCHEMA: dict[str, Any] = {
    "kind": pl.String,
    "src": pl.String,
    "dst": pl.String,
    "score": pl.Float64,
    "modality": pl.String,
    "spans": pl.List(pl.Float64),
}
_MANIFEST_SCHEMA: dict[str, Any] = {"id": pl.String, "etag": pl.String, "modified": pl.String}
_REL_ENDS = {t: pairs[0] for t, pairs in REL_PAIRS.items() if len(pairs) == 1} | {
    "_CANDIDATE": ("Segment", "_Target")
}
_IN_CHUNK = 500  # ids per Lance `IN (...)` filter
# Above this share of the library changed, a full build (bulk COPY into an empty file) is cheaper
# than deleting and re-adding most of the graph, and leaves no deleted rows in the file.
INCREMENTAL_MAX_SHARE = 0.5
# Below this many assets the full build is the cheaper one: Kuzu's checkpoint of the changed copy
# (0.25-0.4 s at 20-50 files, bench/graph_publish.py) costs more than building a small graph afresh.
INCREMENTAL_MIN_ASSETS = 200


def _copy(conn: kuzu.Connection, table: str, frame: pl.DataFrame, pair: tuple[str, str] | None = None) -> int:
    if frame.height == 0:
        return 0
    df = frame.to_arrow()  # noqa: F841  (Kuzu scans the Python variable by name)
    options = f" (from='{pair[0]}', to='{pair[1]}')" if pair else ""
    conn.execute(f"COPY {table} FROM df{options}")
    return frame.height


def _insert(
    conn: kuzu.Connection, table: str, frame: pl.DataFrame, pair: tuple[str, str] | None = None
) -> int:
    """Add rows to a table that already holds some (the incremental build).

    COPY into a non-empty relation table costs in proportion to the table (300 rows into one of 300,000:
    378 ms), LOAD FROM with a primary-key MATCH per end in proportion to the rows (10 ms).
    """
    if frame.height == 0:
        return 0
    ends = pair or _REL_ENDS.get(table)
    if ends is None:
        props = ", ".join(f"{c}: `{c}`" for c in frame.columns)
        cypher = f"LOAD FROM df CREATE (:{table} {{{props}}})"
    else:
        frame = frame.rename({"from": "src_id", "to": "dst_id"})
        props = ", ".join(f"{c}: `{c}`" for c in frame.columns if c not in ("src_id", "dst_id"))
        cypher = (
            f"LOAD FROM df MATCH (a:{ends[0]} {{id: src_id}}) MATCH (b:{ends[1]} {{id: dst_id}}) "
            f"CREATE (a)-[:{table} {{{props}}}]->(b)"
        )
    df = frame.to_arrow()  # noqa: F841  (Kuzu scans the Python variable by name)
    conn.execute(cypher)
    return frame.height


def _undirected(frame: pl.DataFrame) -> pl.DataFrame:
    """(src, dst) with src < dst, so a pair found from both sides is one edge; `spans` ([src start,
    src end, dst start, dst end]) swap halves with them."""
    swapped = pl.col("src") > pl.col("dst")
    if "spans" in frame.columns:
        frame = frame.with_columns(
            pl.when(swapped & pl.col("spans").is_not_null())
            .then(pl.concat_list(pl.col("spans").list.slice(2, 2), pl.col("spans").list.slice(0, 2)))
            .otherwise(pl.col("spans"))
            .alias("spans")
        )
    return frame.with_columns(
        pl.min_horizontal("src", "dst").alias("src"), pl.max_horizontal("src", "dst").alias("dst")
    )


@dataclass
class _Derived:
    """The relations contribution edges make between the segments they may join."""

    concepts: pl.DataFrame  # id
    copies: list[tuple[str, pl.DataFrame, tuple[str, str] | None]]  # (table, rows, (from, to) labels)
    candidates: pl.DataFrame  # the pair edges as written, from a segment in the graph (`_CANDIDATE`)
    kept: int  # edges whose source segment is in the graph


def _derive(seg_keys: pl.DataFrame, edges: pl.DataFrame) -> _Derived:
    """NEXT, OVERLAPS, TAGGED, SIMILAR_TO and DUPLICATE_OF rows from contribution edges.

    `seg_keys` (id, asset) are the segments the edges may join. The full build passes every segment
    and every contribution; the incremental one the changed assets' segments, their own edges and the
    edges other contributions point at them, with the segments those come from or go to: every row
    below depends only on the edges touching its own segments (pairs) or asset (asset aggregates).
    """
    seg_asset = dict(zip(seg_keys["id"].to_list(), seg_keys["asset"].to_list(), strict=True))
    # Edges whose segments are gone (deleted or reprocessed assets) are dropped here.
    edges = edges.join(seg_keys.rename({"id": "src", "asset": "src_asset"}), on="src", how="inner")
    copies: list[tuple[str, pl.DataFrame, tuple[str, str] | None]] = []

    nxt = edges.filter(pl.col("kind") == "NEXT").join(
        seg_keys.rename({"id": "dst", "asset": "dst_asset"}), on="dst", how="inner"
    )
    nxt = nxt.filter(pl.col("src_asset") == pl.col("dst_asset")).unique(["src", "dst"])
    copies.append(
        (
            "NEXT",
            nxt.select(pl.col("src").alias("from"), pl.col("dst").alias("to"), pl.col("score").alias("gap")),
            None,
        )
    )

    overlaps = edges.filter(pl.col("kind") == "OVERLAPS").join(
        seg_keys.rename({"id": "dst", "asset": "dst_asset"}), on="dst", how="inner"
    )
    overlaps = overlaps.filter(pl.col("src_asset") == pl.col("dst_asset")).unique(["src", "dst"])
    copies.append(
        (
            "OVERLAPS",
            overlaps.select(
                pl.col("src").alias("from"), pl.col("dst").alias("to"), pl.col("score").alias("seconds")
            ),
            None,
        )
    )

    tagged = (
        edges.filter(pl.col("kind") == "TAGGED")
        .group_by("src", "dst", "src_asset")
        .agg(pl.col("score").max().alias("confidence"))
    )
    concepts = tagged.select(pl.col("dst").unique().sort().alias("id"))
    seg_tagged = tagged.select(
        pl.col("src").alias("from"),
        pl.col("dst").alias("to"),
        "confidence",
        pl.lit(1, pl.Int64).alias("segments"),
    )
    asset_tagged = tagged.group_by("src_asset", "dst").agg(
        pl.col("confidence").max(), pl.len().cast(pl.Int64).alias("segments")
    )
    asset_tagged = asset_tagged.select(
        pl.col("src_asset").alias("from"), pl.col("dst").alias("to"), "confidence", "segments"
    )
    copies.append(("TAGGED", seg_tagged, ("Segment", "Concept")))
    copies.append(("TAGGED", asset_tagged, ("Asset", "Concept")))

    if "spans" not in edges.columns:
        edges = edges.with_columns(pl.lit(None, pl.List(pl.Float64)).alias("spans"))
    candidates = edges.filter(pl.col("kind").is_in(_PAIR_KINDS)).select(
        pl.col("src").alias("from"),
        pl.col("dst").alias("to"),
        "kind",
        "score",
        "modality",
        pl.col("spans").cast(pl.List(pl.Float64)),
    )
    pairs = edges.filter(pl.col("kind").is_in(_PAIR_KINDS)).join(
        seg_keys.rename({"id": "dst", "asset": "dst_asset"}), on="dst", how="inner"
    )
    pairs = _undirected(
        pairs.filter(pl.col("src_asset") != pl.col("dst_asset")).drop("src_asset", "dst_asset")
    )
    pairs = pairs.with_columns(
        pl.col("src").replace_strict(seg_asset).alias("src_asset"),
        pl.col("dst").replace_strict(seg_asset).alias("dst_asset"),
    )

    similar = (
        pairs.filter(pl.col("kind") == "SIMILAR_TO")
        .group_by("src", "dst", "modality")
        .agg(pl.col("score").max(), pl.col("src_asset").first(), pl.col("dst_asset").first())
    )
    seg_similar = similar.select(pl.col("src").alias("from"), pl.col("dst").alias("to"), "score", "modality")
    asset_similar = (
        similar.with_columns(
            pl.min_horizontal("src_asset", "dst_asset").alias("a"),
            pl.max_horizontal("src_asset", "dst_asset").alias("b"),
        )
        .group_by("a", "b", "modality")
        .agg(pl.col("score").max())
        .select(pl.col("a").alias("from"), pl.col("b").alias("to"), "score", "modality")
    )
    copies.append(("SIMILAR_TO", seg_similar, ("Segment", "Segment")))
    copies.append(("SIMILAR_TO", asset_similar, ("Asset", "Asset")))

    # Best score first; among equal scores the spans in a fixed order, so the edge is the same whatever
    # order the contributions were read in (the full and the incremental build read them differently).
    dups = (
        pairs.filter(pl.col("kind") == "DUPLICATE_OF")
        .with_columns(pl.col("spans").cast(pl.List(pl.String)).list.join(",").alias("order"))
        .sort(["score", "order"], descending=[True, False], nulls_last=True)
        .group_by("src", "dst", maintain_order=True)
        .agg(pl.col("score").first(), pl.col("spans").drop_nulls().first())
    )
    seg_dups = dups.select(
        pl.col("src").alias("from"),
        pl.col("dst").alias("to"),
        "score",
        pl.lit(1, pl.Int64).alias("shared_segments"),
        pl.lit(None, pl.List(pl.String)).alias("segment_pairs"),
        pl.col("spans").cast(pl.List(pl.Float64)),
    )
    shared = shared_segments(dups.select("src", "dst", "score").iter_rows(), seg_asset)
    asset_dups = pl.DataFrame(
        {
            "from": [s.asset_a for s in shared],
            "to": [s.asset_b for s in shared],
            "score": [s.score for s in shared],
            "shared_segments": [s.count for s in shared],
            "segment_pairs": [[f"{x}:{y}" for x, y in s.pairs] for s in shared],
            "spans": [None] * len(shared),
        },
        schema={
            "from": pl.String,
            "to": pl.String,
            "score": pl.Float64,
            "shared_segments": pl.Int64,
            "segment_pairs": pl.List(pl.String),
            "spans": pl.List(pl.Float64),
        },
    )
    copies.append(("DUPLICATE_OF", seg_dups, ("Segment", "Segment")))
    copies.append(("DUPLICATE_OF", asset_dups, ("Asset", "Asset")))
    return _Derived(concepts, copies, candidates, edges.height)


def _memberships(collections: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """IN_COLLECTION rows (from, to): collection members and each asset's own collection_id."""
    members = collections.select("id", "asset_ids").explode("asset_ids").drop_nulls("asset_ids")
    by_member = members.select(pl.col("asset_ids").alias("from"), pl.col("id").alias("to"))
    by_asset = assets.filter(pl.col("collection_id").is_not_null()).select(
        pl.col("id").alias("from"), pl.col("collection_id").alias("to")
    )
    return (
        pl.concat([by_member, by_asset])
        .unique()
        .filter(
            pl.col("from").is_in(assets["id"].implode()) & pl.col("to").is_in(collections["id"].implode())
        )
    )


def _graph_segments(segments: pl.DataFrame, asset_ids: list[str]) -> pl.DataFrame:
    return (
        segments.select(_SEGMENT_COLS).filter(pl.col("asset_id").is_in(asset_ids)).unique("id", keep="last")
    )


def _seg_keys(segments: pl.DataFrame) -> pl.DataFrame:
    return segments.select("id", pl.col("asset_id").alias("asset"))


def _manifest_rows(contributions: dict[str, ObjectInfo], asset_ids: Iterable[str]) -> pl.DataFrame:
    ids = sorted(a for a in set(asset_ids) if a in contributions)
    return pl.DataFrame(
        {
            "id": ids,
            "etag": [contributions[a].etag for a in ids],
            "modified": [contributions[a].modified.isoformat() for a in ids],
        },
        schema=_MANIFEST_SCHEMA,
    )


def _add_candidates(conn: kuzu.Connection, candidates: pl.DataFrame, add: Any) -> None:
    """Add `_CANDIDATE` edges (with `_copy` or `_insert`), creating the `_Target` nodes not yet there."""
    targets = candidates.select(pl.col("to").unique().sort().alias("id"))
    known = set(_ids(conn, "MATCH (t:_Target) WHERE t.id IN $ids RETURN t.id", targets["id"].to_list()))
    add(conn, "_Target", targets.filter(~pl.col("id").is_in(list(known))))
    add(conn, "_CANDIDATE", candidates)


def build_graph(conn: kuzu.Connection, inputs: GraphInputs) -> BuildReport:
    """Create the schema and load every node and relation of one snapshot (the connection is empty)."""
    for ddl in (*DDL, *BOOKKEEPING_DDL):
        conn.execute(ddl)

    assets = inputs.assets.select(_ASSET_COLS).unique("id", keep="last")
    asset_ids = assets["id"].to_list()
    segments = _graph_segments(inputs.segments, asset_ids)
    collections = inputs.collections.unique("id", keep="last")

    _copy(conn, "Asset", assets)
    _copy(conn, "Segment", segments)
    _copy(conn, "Collection", collections.select("id", "name", "auto_generated"))
    _copy(conn, "HAS_SEGMENT", segments.select(pl.col("asset_id").alias("from"), pl.col("id").alias("to")))

    derived = _derive(_seg_keys(segments), inputs.edges)
    _copy(conn, "Concept", derived.concepts)
    for table, frame, pair in derived.copies:
        _copy(conn, table, frame, pair)
    _copy(conn, "IN_COLLECTION", _memberships(collections, assets))

    format_row = pl.DataFrame(
        {"id": [FORMAT_ROW], "etag": [GRAPH_FORMAT], "modified": [""]}, schema=_MANIFEST_SCHEMA
    )
    _copy(conn, "_Manifest", pl.concat([format_row, _manifest_rows(inputs.contributions, asset_ids)]))
    _add_candidates(conn, derived.candidates, _copy)

    report = summarize(conn)
    report.dropped_edges = inputs.edges.height - derived.kept
    return report


def apply_changes(
    conn: kuzu.Connection, changed: Iterable[str], current: CurrentInputs, catalog: Any, store: ObjectStore
) -> BuildReport:
    """Bring a copy of the live snapshot to what `build_graph` would build from `current`.

    `changed` are the assets whose catalog row, contribution or presence differ from what the snapshot
    was built from (`plan_changes`). Their nodes go with every edge touching them (DETACH DELETE), then
    come back from their rows, their own contribution and the `_CANDIDATE` edges of other assets that
    point at their segments; concepts and candidate targets nothing points at any more are removed.
    Collections are compared whole (one small table) and their differences applied.
    """
    ids = sorted(set(changed))
    rows = current.assets.filter(pl.col("id").is_in(ids))
    present = rows["id"].to_list()
    segments = _graph_segments(_catalog_segments(catalog, present), present)
    listed = {a: current.contributions[a] for a in present if a in current.contributions}
    table, read = fetch_contributions(store, listed)
    contributed = _as_frame(table)

    old_concepts = _ids(
        conn,
        "MATCH (a:Asset)-[:HAS_SEGMENT]->(:Segment)-[:TAGGED]->(c:Concept) WHERE a.id IN $ids "
        "RETURN DISTINCT c.id",
        ids,
    )
    old_targets = _ids(
        conn,
        "MATCH (a:Asset)-[:HAS_SEGMENT]->(:Segment)-[:_CANDIDATE]->(t:_Target) WHERE a.id IN $ids "
        "RETURN DISTINCT t.id",
        ids,
    )
    if ids:
        conn.execute(
            "MATCH (a:Asset)-[:HAS_SEGMENT]->(s:Segment) WHERE a.id IN $ids DETACH DELETE s", {"ids": ids}
        )
        conn.execute("MATCH (a:Asset) WHERE a.id IN $ids DETACH DELETE a", {"ids": ids})
        conn.execute("MATCH (m:_Manifest) WHERE m.id IN $ids DELETE m", {"ids": ids})

    _insert(conn, "Asset", rows.select(_ASSET_COLS))
    _insert(conn, "Segment", segments)
    _insert(conn, "HAS_SEGMENT", segments.select(pl.col("asset_id").alias("from"), pl.col("id").alias("to")))

    own = _seg_keys(segments)
    # A contribution's edges start at its own asset's segments (segment ids derive from the asset id).
    edges = contributed.join(own.select(pl.col("id").alias("src")), on="src", how="semi")
    incoming = _query(
        conn,
        "MATCH (s:Segment)-[r:_CANDIDATE]->(t:_Target) WHERE t.id IN $ids RETURN r.kind AS kind, "
        "s.id AS src, t.id AS dst, r.score AS score, r.modality AS modality, r.spans AS spans, "
        "s.asset_id AS asset",
        own["id"].to_list(),
        {**_EDGE_SCHEMA, "asset": pl.String},
    )
    far = edges.filter(pl.col("kind").is_in(_PAIR_KINDS))["dst"].unique().to_list()
    beyond = _query(
        conn,
        "MATCH (s:Segment) WHERE s.id IN $ids RETURN s.id AS id, s.asset_id AS asset",
        far,
        {"id": pl.String, "asset": pl.String},
    )
    seg_keys = pl.concat([own, incoming.select(pl.col("src").alias("id"), "asset"), beyond]).unique("id")
    derived = _derive(seg_keys, pl.concat([edges, incoming.drop("asset")]))

    concepts = derived.concepts["id"].to_list()
    known = set(_ids(conn, "MATCH (c:Concept) WHERE c.id IN $ids RETURN c.id", concepts))
    _insert(conn, "Concept", derived.concepts.filter(~pl.col("id").is_in(list(known))))
    for name, frame, pair in derived.copies:
        _insert(conn, name, frame, pair)
    _add_candidates(
        conn, derived.candidates.join(own.select(pl.col("id").alias("from")), on="from", how="semi"), _insert
    )
    _insert(conn, "_Manifest", _manifest_rows({a: i for a, i in listed.items() if a in read}, present))

    if old_concepts:
        conn.execute(
            "MATCH (c:Concept) WHERE c.id IN $ids AND NOT EXISTS { MATCH (:Segment)-[:TAGGED]->(c) } "
            "DETACH DELETE c",
            {"ids": old_concepts},
        )
    if old_targets:
        conn.execute(
            "MATCH (t:_Target) WHERE t.id IN $ids AND NOT EXISTS { MATCH (:Segment)-[:_CANDIDATE]->(t) } "
            "DELETE t",
            {"ids": old_targets},
        )
    _apply_collections(conn, current.collections.unique("id", keep="last"), current.assets)

    report = summarize(conn)
    report.dropped_edges = contributed.height - edges.height
    return report


def _apply_collections(conn: kuzu.Connection, collections: pl.DataFrame, assets: pl.DataFrame) -> None:
    """Make Collection nodes and IN_COLLECTION edges those of the catalog (auto collections change each refresh)."""
    want = collections.select("id", "name", "auto_generated")
    have = _query(
        conn,
        "MATCH (c:Collection) RETURN c.id AS id, c.name AS name, c.auto_generated AS auto_generated",
        None,
        dict(want.schema),
    )
    cols = ["id", "name", "auto_generated"]
    stale = have.join(want, on=cols, how="anti", nulls_equal=True)["id"].to_list()
    if stale:
        conn.execute("MATCH (c:Collection) WHERE c.id IN $ids DETACH DELETE c", {"ids": stale})
    _insert(conn, "Collection", want.join(have, on=cols, how="anti", nulls_equal=True))

    wanted = _memberships(collections, assets)
    present = _query(
        conn,
        "MATCH (a:Asset)-[:IN_COLLECTION]->(c:Collection) RETURN a.id AS src, c.id AS dst",
        None,
        {"src": pl.String, "dst": pl.String},
    ).rename({"src": "from", "dst": "to"})
    extra = present.join(wanted, on=["from", "to"], how="anti")
    if extra.height:
        conn.execute(
            "UNWIND $pairs AS p MATCH (a:Asset)-[r:IN_COLLECTION]->(c:Collection) "
            "WHERE a.id = p[1] AND c.id = p[2] DELETE r",
            {"pairs": [list(r) for r in extra.iter_rows()]},
        )
    _insert(conn, "IN_COLLECTION", wanted.join(present, on=["from", "to"], how="anti"))


def summarize(conn: kuzu.Connection) -> BuildReport:
    """Counts, the most tagged concepts and the duplicate groups of a built snapshot."""
    report = BuildReport()
    for t in NODE_TYPES:
        report.nodes[t] = int(_rows(conn, f"MATCH (n:{t}) RETURN count(n)")[0][0])
    for t in REL_TYPES:
        report.relations[t] = int(_rows(conn, f"MATCH ()-[r:{t}]->() RETURN count(r)")[0][0])
    report.top_concepts = [
        (str(name), int(n))
        for name, n in _rows(
            conn,
            "MATCH (:Asset)-[:TAGGED]->(c:Concept) RETURN c.id AS name, count(*) AS n "
            "ORDER BY n DESC, name LIMIT 10",
        )
    ]
    pairs = _rows(conn, "MATCH (a:Asset)-[:DUPLICATE_OF]->(b:Asset) RETURN a.id, b.id")
    report.duplicate_groups = duplicate_groups((str(a), str(b)) for a, b in pairs)
    return report


def _rows(conn: kuzu.Connection, cypher: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    result = conn.execute(cypher, params or {})
    assert not isinstance(result, list)  # one statement, one result
    return cast(list[list[Any]], result.get_all())


def _ids(conn: kuzu.Connection, cypher: str, ids: list[str]) -> list[str]:
    """The first column of a query over `$ids` (none asked, none run: Kuzu cannot type an empty list)."""
    if not ids:
        return []
    return [str(r[0]) for r in _rows(conn, cypher, {"ids": ids})]


def _query(conn: kuzu.Connection, cypher: str, ids: list[str] | None, schema: dict[str, Any]) -> pl.DataFrame:
    """Rows of a query (over `$ids` when given) as a frame of `schema`."""
    if ids is not None and not ids:
        return pl.DataFrame(schema=schema)
    result = conn.execute(cypher, {"ids": ids} if ids is not None else {})
    assert not isinstance(result, list)
    frame = result.get_as_pl()
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    return frame.select(list(schema)).cast(pl.Schema(schema))


# --- reading the stores -------------------------------------------------------------------


def _frame(table: pa.Table, columns: list[str]) -> pl.DataFrame:
    frame = pl.from_arrow(table.select(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _as_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


@dataclass
class CurrentInputs:
    """What every publication reads whole: the catalog's asset columns the graph keeps (one narrow scan of
    one row per asset), the collections table (one row per collection) and the contributions' listing."""

    assets: pl.DataFrame  # _ASSET_COLS, deleted assets left out, created_at in UTC wall time
    collections: pl.DataFrame  # id, name, auto_generated, asset_ids
    contributions: dict[str, ObjectInfo]  # asset id -> listing, deleted assets left out


def read_current(catalog: Any, store: ObjectStore, exclude: set[str]) -> CurrentInputs:
    table = catalog.assets
    rows = table.search().select(_ASSET_COLS).limit(max(table.count_rows(), 1)).to_arrow()
    assets = _frame(rows, _ASSET_COLS).filter(~pl.col("id").is_in(list(exclude)))
    # Kuzu's TIMESTAMP has no zone: store UTC wall time.
    assets = assets.with_columns(pl.col("created_at").dt.replace_time_zone(None)).unique("id", keep="last")
    if layout.COLLECTIONS_TABLE in table_names(catalog.db):
        coll_tbl = catalog.db.open_table(layout.COLLECTIONS_TABLE).to_arrow()
    else:
        coll_tbl = records.COLLECTIONS_SCHEMA.empty_table()
    collections = _frame(coll_tbl, ["id", "name", "auto_generated", "asset_ids"])
    listed = {a: info for a, info in list_contributions(store).items() if a not in exclude}
    return CurrentInputs(assets, collections, listed)


def _catalog_segments(catalog: Any, asset_ids: list[str] | None = None) -> pl.DataFrame:
    """Segment rows of these assets (all assets when None), in the graph's column types."""
    if asset_ids is None:
        table = catalog.segments.to_arrow()
    elif not asset_ids:
        table = catalog.segments.schema.empty_table()
    else:
        parts = [
            catalog.segments.search()
            .where(in_list("asset_id", asset_ids[i : i + _IN_CHUNK], uuids=True))
            .select(_SEGMENT_COLS)
            .limit(None)
            .to_arrow()
            for i in range(0, len(asset_ids), _IN_CHUNK)
        ]
        table = pa.concat_tables(parts)
    return _frame(table, _SEGMENT_COLS).with_columns(
        pl.col("sequence_number").cast(pl.Int64), pl.col("page").cast(pl.Int64)
    )


def load_inputs(
    settings: Settings, catalog: Any, exclude: set[str], store: ObjectStore | None = None
) -> GraphInputs:
    """Read assets, segments and collections from Lance and the contributions from the object store."""
    store = store if store is not None else _object_store(settings)
    return _full_inputs(catalog, store, read_current(catalog, store, exclude))


def _full_inputs(catalog: Any, store: ObjectStore, current: CurrentInputs) -> GraphInputs:
    table, read = fetch_contributions(store, current.contributions)
    contributions = {a: i for a, i in current.contributions.items() if a in read}
    segments = _catalog_segments(catalog)
    return GraphInputs(current.assets, segments, current.collections, _as_frame(table), contributions)


def plan_changes(live: Snapshot, current: CurrentInputs) -> tuple[list[str] | None, str]:
    """The assets to apply to a copy of the live snapshot, or None and why the whole graph is rebuilt.

    An asset is changed when it is in the catalog or the snapshot but not both, when any of its graph
    columns differ, when its contribution's listing (etag, LastModified) differs from the snapshot's
    manifest, or while it is queued or processing: its segments are rewritten only during its run,
    which ends by writing its status, so an asset in no run has the segments the snapshot holds.
    """
    db = kuzu.Database(str(live.path), read_only=True, buffer_pool_size=READER_BUFFER_POOL)
    try:
        conn = kuzu.Connection(db)
        try:
            tables = {str(r[0]) for r in _rows(conn, "CALL show_tables() RETURN name")}
            if not set(BOOKKEEPING_TABLES) <= tables:
                return None, "the live snapshot has no manifest"
            found = _rows(conn, "MATCH (m:_Manifest) WHERE m.id = $id RETURN m.etag", {"id": FORMAT_ROW})
            # Format 1 kept its format in a `_Meta` table and has no format row.
            built = str(found[0][0]) if found else "1"
            if built != GRAPH_FORMAT:
                return None, f"the live snapshot is of format {built}, this build writes {GRAPH_FORMAT}"
            props = ", ".join(f"a.{c} AS {c}" for c in _ASSET_COLS)
            graph = _query(conn, f"MATCH (a:Asset) RETURN {props}", None, dict(current.assets.schema))
            manifest = _query(
                conn,
                f"MATCH (m:_Manifest) WHERE m.id <> '{FORMAT_ROW}' RETURN m.id AS id, m.etag AS etag, "
                "m.modified AS modified",
                None,
                _MANIFEST_SCHEMA,
            )
        finally:
            conn.close()
    finally:
        db.close()

    ours = current.assets.select(_ASSET_COLS)
    joined = ours.join(graph, on="id", how="full", suffix="_graph", coalesce=True, nulls_equal=False)
    differs = pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_graph")) for c in _ASSET_COLS if c != "id"]
    )
    rows_changed = set(joined.filter(differs)["id"].to_list())
    pending = set(ours.filter(pl.col("status").is_in(_PENDING))["id"].to_list())
    listing = _manifest_rows(current.contributions, ours["id"].to_list())
    compared = listing.join(
        manifest.filter(pl.col("id").is_in(ours["id"].implode())),
        on="id",
        how="full",
        suffix="_built",
        coalesce=True,
    )
    contrib_changed = set(
        compared.filter(
            pl.col("etag").ne_missing(pl.col("etag_built"))
            | pl.col("modified").ne_missing(pl.col("modified_built"))
        )["id"].to_list()
    )
    changed = sorted(rows_changed | pending | contrib_changed)
    library = max(ours.height, graph.height, 1)
    if len(changed) > INCREMENTAL_MAX_SHARE * library:
        return None, f"{len(changed)} of {library} assets changed"
    return changed, ""


@dataclass
class PublishReport:
    snapshot: Snapshot
    build: BuildReport
    tombstones_applied: list[str]
    seconds: float
    published: Pointer | None = None  # the object store's pointer, when it is S3
    mode: str = "full"  # "incremental": the live snapshot copied and `assets_applied` applied to it
    assets_applied: int = 0  # assets whose nodes and edges were (re)written
    full_reason: str = ""  # why the whole graph was rebuilt


def _object_store(settings: Settings) -> Any:
    from dataflux_pipelines.objectstore import open_object_store

    return open_object_store(settings)


def publish_graph(
    settings: Settings,
    catalog: Any,
    *,
    keep: int | None = None,
    grace_s: float | None = None,
    full: bool = False,
    min_assets: int = INCREMENTAL_MIN_ASSETS,
) -> PublishReport:
    """Fold contributions and deletions into a new snapshot and publish it (one writer at a time).

    The new snapshot is a copy of the live one with only the changed assets applied (`plan_changes`,
    `apply_changes`); it is rebuilt whole (`build_graph`) when there is no live snapshot, it has no
    manifest or another format, more than `INCREMENTAL_MAX_SHARE` of the library changed, the library
    has fewer than `min_assets` assets, or `full`.

    Snapshots beyond the newest `keep` (default: the live one plus `DATAFLUX_GRAPH_SNAPSHOTS_KEPT`)
    are deleted once superseded `grace_s` ago (`DATAFLUX_GRAPH_SNAPSHOT_GRACE_S`). With an S3 object
    store the snapshot is also uploaded and the store's pointer moved to it, for readers on other
    machines (one whose version is collected mid-download reads the pointer again); a failed upload
    fails the publication and keeps the tombstones.
    """
    keep = 1 + settings.graph_snapshots_kept if keep is None else keep
    grace_s = settings.graph_snapshot_grace_s if grace_s is None else grace_s
    started = time.perf_counter()
    graph_dir = settings.graph_dir
    store = _object_store(settings)
    remote = store if is_remote(settings) else None
    tombstones = read_tombstones(store)
    excluded = _apply_tombstones(store, catalog, tombstones)
    current = read_current(catalog, store, excluded)
    live = live_snapshot(graph_dir)
    if full:
        changed, reason = None, "a full build was asked for"
    elif live is None:
        changed, reason = None, "no live snapshot"
    elif current.assets.height < min_assets:
        changed, reason = None, f"{current.assets.height} assets, fewer than {min_assets}"
    else:
        changed, reason = plan_changes(live, current)
    holder: dict[str, BuildReport] = {}

    if changed is None:
        inputs = _full_inputs(catalog, store, current)

        def mutate(conn: kuzu.Connection) -> None:
            holder["report"] = build_graph(conn, inputs)

    else:
        applied = changed

        def mutate(conn: kuzu.Connection) -> None:
            holder["report"] = apply_changes(conn, applied, current, catalog, store)

    first = next_version(remote, GRAPH) if remote is not None else 1
    snapshot = publish_snapshot(
        graph_dir, mutate, copy_live=changed is not None, keep=keep, grace_s=grace_s, min_version=first
    )
    published = None
    if remote is not None:
        published = publish_file(
            remote, GRAPH, snapshot.version, snapshot.path, suffix=".kuzu", keep=keep, grace_s=grace_s
        )
    # A tombstone is done once a snapshot without the asset is live; one rewritten meanwhile
    # (a newer delete) has another etag and LastModified and stays for the next publication.
    remove_reflected_tombstones(store, tombstones)
    return PublishReport(
        snapshot,
        holder["report"],
        sorted(excluded),
        time.perf_counter() - started,
        published,
        mode="full" if changed is None else "incremental",
        assets_applied=current.assets.height if changed is None else len(changed),
        full_reason=reason,
    )


def _apply_tombstones(store: ObjectStore, catalog: Any, tombstones: dict[str, Tombstone]) -> set[str]:
    """Assets to leave out (deleted, and not re-ingested after the deletion); drops their contributions."""
    excluded = set()
    for asset_id, tomb in tombstones.items():
        row = catalog.get_asset(asset_id) if is_uuid(asset_id) else None
        created = row.get("created_at") if row else None
        if row is None or created is None or created.timestamp() <= tomb.deleted_at:
            excluded.add(asset_id)
        # LastModified of both objects comes from the store's clock: a contribution written after
        # the deletion belongs to a re-ingested asset and stays unless that asset is gone again.
        info = store.head(contrib_key(asset_id))
        if info is not None and (asset_id in excluded or info.modified <= tomb.modified):
            store.delete(info.key)
    return excluded


def top_concepts_markdown(top: list[tuple[str, int]]) -> str:
    if not top:
        return "_no concepts yet_"
    lines = ["| concept | assets |", "|---|---|"]
    lines += [f"| {name} | {n} |" for name, n in top]
    return "\n".join(lines)
