"""The graph build: catalog rows and per-file contributions in, one Kuzu snapshot out.

Each publication builds the whole graph into a fresh snapshot with bulk COPY: deletions,
reprocessed files and edges between them need no incremental bookkeeping, and readers
never see a half-applied change.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import kuzu
import polars as pl
import pyarrow as pa

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import table_names
from dataflux_pipelines.duplicates import duplicate_groups, shared_segments
from dataflux_pipelines.graph.contrib import read_contributions
from dataflux_pipelines.graph.schema import DDL, NODE_TYPES, REL_TYPES
from dataflux_pipelines.graph.store import (
    Snapshot,
    Tombstone,
    contrib_key,
    publish_snapshot,
    read_tombstones,
    remove_reflected_tombstones,
)
from dataflux_pipelines.identity import is_uuid
from dataflux_pipelines.objectstore import ObjectStore
from dataflux_pipelines.published import GRAPH, Pointer, is_remote, next_version, publish_file
from dataflux_pipelines.settings import Settings


@dataclass
class GraphInputs:
    """Everything one snapshot is built from."""

    assets: pl.DataFrame  # id, filename, media_type, mime_type, status, duration, collection_id, created_at
    segments: pl.DataFrame  # id, asset_id, segment_type, sequence_number, start_time, end_time, page
    collections: pl.DataFrame  # id, name, auto_generated, asset_ids
    edges: pl.DataFrame  # kind, src, dst, score, modality (contributions)


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


def _copy(conn: kuzu.Connection, table: str, frame: pl.DataFrame, pair: tuple[str, str] | None = None) -> int:
    if frame.height == 0:
        return 0
    df = frame.to_arrow()  # noqa: F841  (Kuzu scans the Python variable by name)
    options = f" (from='{pair[0]}', to='{pair[1]}')" if pair else ""
    conn.execute(f"COPY {table} FROM df{options}")
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


def build_graph(conn: kuzu.Connection, inputs: GraphInputs) -> BuildReport:
    """Create the schema and load every node and relation of one snapshot (the connection is empty)."""
    report = BuildReport()
    for ddl in DDL:
        conn.execute(ddl)

    assets = inputs.assets.select(_ASSET_COLS).unique("id", keep="last")
    asset_ids = set(assets["id"].to_list())
    segments = inputs.segments.select(_SEGMENT_COLS).filter(pl.col("asset_id").is_in(list(asset_ids)))
    segments = segments.unique("id", keep="last")
    seg_asset = dict(zip(segments["id"].to_list(), segments["asset_id"].to_list(), strict=True))
    collections = inputs.collections.unique("id", keep="last")

    report.nodes["Asset"] = _copy(conn, "Asset", assets)
    report.nodes["Segment"] = _copy(conn, "Segment", segments)
    report.nodes["Collection"] = _copy(conn, "Collection", collections.select("id", "name", "auto_generated"))

    report.relations["HAS_SEGMENT"] = _copy(
        conn, "HAS_SEGMENT", segments.select(pl.col("asset_id").alias("from"), pl.col("id").alias("to"))
    )

    seg_keys = pl.DataFrame(
        {"id": list(seg_asset), "asset": list(seg_asset.values())},
        schema={"id": pl.String, "asset": pl.String},
    )
    edges = inputs.edges
    total_edges = edges.height
    # Edges whose segments are gone (deleted or reprocessed assets) are dropped here.
    edges = edges.join(seg_keys.rename({"id": "src", "asset": "src_asset"}), on="src", how="inner")

    nxt = edges.filter(pl.col("kind") == "NEXT").join(
        seg_keys.rename({"id": "dst", "asset": "dst_asset"}), on="dst", how="inner"
    )
    nxt = nxt.filter(pl.col("src_asset") == pl.col("dst_asset")).unique(["src", "dst"])
    report.relations["NEXT"] = _copy(
        conn,
        "NEXT",
        nxt.select(pl.col("src").alias("from"), pl.col("dst").alias("to"), pl.col("score").alias("gap")),
    )

    overlaps = edges.filter(pl.col("kind") == "OVERLAPS").join(
        seg_keys.rename({"id": "dst", "asset": "dst_asset"}), on="dst", how="inner"
    )
    overlaps = overlaps.filter(pl.col("src_asset") == pl.col("dst_asset")).unique(["src", "dst"])
    report.relations["OVERLAPS"] = _copy(
        conn,
        "OVERLAPS",
        overlaps.select(
            pl.col("src").alias("from"), pl.col("dst").alias("to"), pl.col("score").alias("seconds")
        ),
    )

    tagged = (
        edges.filter(pl.col("kind") == "TAGGED")
        .group_by("src", "dst", "src_asset")
        .agg(pl.col("score").max().alias("confidence"))
    )
    concepts = tagged.select(pl.col("dst").unique().sort().alias("id"))
    report.nodes["Concept"] = _copy(conn, "Concept", concepts)
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
    report.relations["TAGGED"] = _copy(conn, "TAGGED", seg_tagged, ("Segment", "Concept")) + _copy(
        conn, "TAGGED", asset_tagged, ("Asset", "Concept")
    )
    counts = Counter(
        dict(
            zip(
                *asset_tagged.group_by("to").len().select("to", "len").to_dict(as_series=False).values(),
                strict=True,
            )
        )
    )
    report.top_concepts = counts.most_common(10)

    pairs = edges.filter(pl.col("kind").is_in(["SIMILAR_TO", "DUPLICATE_OF"])).join(
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
    report.relations["SIMILAR_TO"] = _copy(conn, "SIMILAR_TO", seg_similar, ("Segment", "Segment")) + _copy(
        conn, "SIMILAR_TO", asset_similar, ("Asset", "Asset")
    )

    if "spans" not in pairs.columns:
        pairs = pairs.with_columns(pl.lit(None, pl.List(pl.Float64)).alias("spans"))
    dups = (
        pairs.filter(pl.col("kind") == "DUPLICATE_OF")
        .sort("score", descending=True, nulls_last=True)
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
    report.relations["DUPLICATE_OF"] = _copy(conn, "DUPLICATE_OF", seg_dups, ("Segment", "Segment")) + _copy(
        conn, "DUPLICATE_OF", asset_dups, ("Asset", "Asset")
    )
    report.duplicate_groups = duplicate_groups((s.asset_a, s.asset_b) for s in shared)

    members = collections.select("id", "asset_ids").explode("asset_ids").drop_nulls("asset_ids")
    by_member = members.select(pl.col("asset_ids").alias("from"), pl.col("id").alias("to"))
    by_asset = assets.filter(pl.col("collection_id").is_not_null()).select(
        pl.col("id").alias("from"), pl.col("collection_id").alias("to")
    )
    in_coll = (
        pl.concat([by_member, by_asset])
        .unique()
        .filter(pl.col("from").is_in(list(asset_ids)) & pl.col("to").is_in(collections["id"].to_list()))
    )
    report.relations["IN_COLLECTION"] = _copy(conn, "IN_COLLECTION", in_coll)

    for t in NODE_TYPES:
        report.nodes.setdefault(t, 0)
    for t in REL_TYPES:
        report.relations.setdefault(t, 0)
    report.dropped_edges = total_edges - edges.height
    return report


# --- reading the stores -------------------------------------------------------------------


def _frame(table: pa.Table, columns: list[str]) -> pl.DataFrame:
    frame = pl.from_arrow(table.select(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_inputs(
    settings: Settings, catalog: Any, exclude: set[str], store: ObjectStore | None = None
) -> GraphInputs:
    """Read assets, segments and collections from Lance and the contributions from the object store."""
    store = store if store is not None else _object_store(settings)
    assets_tbl = catalog.assets.to_arrow()
    assets = _frame(assets_tbl, _ASSET_COLS).filter(~pl.col("id").is_in(list(exclude)))
    # Kuzu's TIMESTAMP has no zone: store UTC wall time.
    assets = assets.with_columns(pl.col("created_at").dt.replace_time_zone(None))
    segments = _frame(catalog.segments.to_arrow(), _SEGMENT_COLS).with_columns(
        pl.col("sequence_number").cast(pl.Int64), pl.col("page").cast(pl.Int64)
    )
    if layout.COLLECTIONS_TABLE in table_names(catalog.db):
        coll_tbl = catalog.db.open_table(layout.COLLECTIONS_TABLE).to_arrow()
    else:
        coll_tbl = records.COLLECTIONS_SCHEMA.empty_table()
    collections = _frame(coll_tbl, ["id", "name", "auto_generated", "asset_ids"])
    edges = pl.from_arrow(read_contributions(store, exclude))
    assert isinstance(edges, pl.DataFrame)
    return GraphInputs(assets, segments, collections, edges)


@dataclass
class PublishReport:
    snapshot: Snapshot
    build: BuildReport
    tombstones_applied: list[str]
    seconds: float
    published: Pointer | None = None  # the object store's pointer, when it is S3


def _object_store(settings: Settings) -> Any:
    from dataflux_pipelines.objectstore import open_object_store

    return open_object_store(settings)


def publish_graph(
    settings: Settings, catalog: Any, *, keep: int | None = None, grace_s: float | None = None
) -> PublishReport:
    """Fold contributions and deletions into a new snapshot and publish it (one writer at a time).

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
    inputs = load_inputs(settings, catalog, excluded, store)
    holder: dict[str, BuildReport] = {}

    def mutate(conn: kuzu.Connection) -> None:
        holder["report"] = build_graph(conn, inputs)

    first = next_version(remote, GRAPH) if remote is not None else 1
    snapshot = publish_snapshot(graph_dir, mutate, keep=keep, grace_s=grace_s, min_version=first)
    published = None
    if remote is not None:
        published = publish_file(
            remote, GRAPH, snapshot.version, snapshot.path, suffix=".kuzu", keep=keep, grace_s=grace_s
        )
    # A tombstone is done once a snapshot without the asset is live; one rewritten meanwhile
    # (a newer delete) has another etag and LastModified and stays for the next publication.
    remove_reflected_tombstones(store, tombstones)
    return PublishReport(
        snapshot, holder["report"], sorted(excluded), time.perf_counter() - started, published
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
