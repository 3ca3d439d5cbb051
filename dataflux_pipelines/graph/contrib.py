"""One file's contribution to the graph, computed in its partitioned run and folded in by `media_graph`.

The contribution is a small Parquet object of edges (temporal order, concepts, similar and
duplicate candidates from nearest-neighbour search) at `graph/contrib/{asset_id}.parquet` in the
object store, so run workers on any machine can write it and the single graph writer only has to
read objects, never run searches.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataflux_pipelines import duplicates as dup
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import open_fixed_schema, table_names
from dataflux_pipelines.duplicates import SIMILAR_TOP_K, duplicate_threshold, similar_floor, space_for_table
from dataflux_pipelines.graph.schema import CONTRIB_COLUMNS
from dataflux_pipelines.graph.store import CONTRIB_PREFIX, contrib_key
from dataflux_pipelines.lance_sql import in_list, uuid_literal
from dataflux_pipelines.models.efficientnet import EFFICIENTNET_SPACE
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_SPACE
from dataflux_pipelines.objectstore import ObjectInfo, ObjectMissing, ObjectStore, open_object_store
from dataflux_pipelines.records import vector_matrix
from dataflux_pipelines.settings import Settings

CONTRIB_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string()),
        pa.field("src", pa.string()),
        pa.field("dst", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("modality", pa.string()),
        # DUPLICATE_OF between segments: [src start, src end, dst start, dst end] in seconds, the span
        # each shares with the other (null on other edges, and in contributions written before it).
        pa.field("spans", pa.list_(pa.float64())),
    ]
)
assert tuple(CONTRIB_SCHEMA.names) == CONTRIB_COLUMNS
# Contribution objects fetched at once by the publisher: one GET each, latency-bound on S3.
READ_WORKERS = 16


def segment_concepts(segment: dict[str, Any]) -> dict[str, float | None]:
    """Concept → confidence of one segment; confidence is None where the writer recorded none."""
    scores: dict[str, float | None] = {}
    semantic = segment.get("semantic_features") or {}
    if isinstance(semantic, str):
        semantic = json.loads(semantic) if semantic else {}
    recorded = semantic.get("concepts") if isinstance(semantic, dict) else None
    if isinstance(recorded, dict):
        scores.update({str(k): float(v) for k, v in recorded.items() if v is not None})
    elif isinstance(recorded, list):
        for item in recorded:
            if isinstance(item, list | tuple) and len(item) == 2:
                scores[str(item[0])] = float(item[1])
            elif isinstance(item, dict) and (item.get("label") or item.get("name")):
                conf = item.get("confidence", item.get("score"))
                scores[str(item.get("label") or item.get("name"))] = None if conf is None else float(conf)
    for name in segment.get("concepts") or []:
        scores.setdefault(str(name), None)
    return {k.strip().lower(): v for k, v in scores.items() if k and k.strip()}


def temporal_edges(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NEXT edges: consecutive segments of the same kind, in time (or page) order; score = gap in seconds."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for seg in segments:
        by_type.setdefault(seg.get("segment_type") or "", []).append(seg)
    edges = []
    for segs in by_type.values():
        segs = sorted(
            segs,
            key=lambda s: (
                s.get("start_time") if s.get("start_time") is not None else float("inf"),
                s.get("page") or 0,
                s.get("sequence_number") or 0,
            ),
        )
        for a, b in itertools.pairwise(segs):
            gap = None
            if a.get("end_time") is not None and b.get("start_time") is not None:
                gap = float(b["start_time"]) - float(a["end_time"])
            edges.append({"kind": "NEXT", "src": a["id"], "dst": b["id"], "score": gap, "modality": None})
    return edges


_READ_TYPES = ("transcript", "text")  # segments holding what is said or shown
_SPAN_TYPES = ("shot", "audio", "image")  # segments they are linked to by time


def overlap_edges(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OVERLAPS edges: each transcript / text segment to the shots and passages its time span overlaps
    (score = seconds of overlap); an image's text to its image segment (score None: no time)."""
    spans = [s for s in segments if s.get("segment_type") in _SPAN_TYPES]
    edges = []
    for seg in segments:
        if seg.get("segment_type") not in _READ_TYPES:
            continue
        a, b = seg.get("start_time"), seg.get("end_time")
        for other in spans:
            if a is None or b is None:
                if other.get("segment_type") == "image" and other.get("start_time") is None:
                    edges.append(
                        {
                            "kind": "OVERLAPS",
                            "src": seg["id"],
                            "dst": other["id"],
                            "score": None,
                            "modality": None,
                        }
                    )
                continue
            c, d = other.get("start_time"), other.get("end_time")
            if c is None or d is None:
                continue
            shared = min(float(b), float(d)) - max(float(a), float(c))
            if shared > 0:
                edges.append(
                    {
                        "kind": "OVERLAPS",
                        "src": seg["id"],
                        "dst": other["id"],
                        "score": round(shared, 3),
                        "modality": None,
                    }
                )
    return edges


@dataclass
class BatchReads:
    """What the contributions of a batch of assets read, one query per table for the whole batch instead
    of one or two per asset and table (~8 ms a document, ~15 ms a picture on 2 cores).

    Only rows of the batch's own assets are read ahead: their embeddings are written before the graph
    stage and nothing rewrites them during it. Their nearest neighbours are searched for the whole batch
    too (`_batch_neighbours`), and the rows that verifying the batch's duplicate candidates needs are read
    once (`_Verification`): a picture's contribution ran ~7 queries of its own, 20 of its 25 ms here.
    """

    names: list[str]
    existing: set[str]
    segments: dict[str, list[dict[str, Any]]]
    own: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # table -> asset -> rows
    # Handles opened once for the batch, each reading its schema once (`open_fixed_schema`): a picture's
    # contribution opened five tables and read their schemas ~20 times, 27 of its 81 ms here.
    tables: dict[str, Any] = field(default_factory=dict)
    # Stored signatures by (segment id, descriptor kind): a neighbour that is a candidate of several of
    # the batch's assets keeps its crop/mirror views (`Signature.views`, ~2 ms each) from the first.
    signatures: dict[tuple[str, bool], dup.Signature] = field(default_factory=dict)
    # Nearest neighbours of the batch's searchable rows: table -> asset -> one list per row, in the order
    # of `searchable` (the text vectors of the segments table under its own name).
    found: dict[str, dict[str, list[list[tuple[str, float]]]]] = field(default_factory=dict)
    verification: _Verification | None = None

    def table(self, catalog: Any, name: str) -> Any:
        if name not in self.tables:
            self.tables[name] = open_fixed_schema(catalog.db, name)
        return self.tables[name]

    @classmethod
    def read(cls, catalog: Any, asset_ids: Sequence[str]) -> BatchReads:
        ids = list(dict.fromkeys(asset_ids))
        names = sorted(table_names(catalog.db))
        reads = cls(
            names=names,
            existing={row["id"] for row in catalog.get_assets(ids)},
            segments=catalog.segments_for_assets(ids, with_vectors=True),
        )
        where = in_list("asset_id", ids, uuids=True) if ids else None
        for name in names:
            if where is None or not (layout.is_vector_table(name) or name == layout.SHOT_FRAMES_TABLE):
                continue
            rows = (
                reads.table(catalog, name)
                .search()
                .where(where)
                .select(["segment_id", "asset_id", "vector"])
                .limit(None)
                .to_list()
            )
            by_asset: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_asset.setdefault(row["asset_id"], []).append(row)
            reads.own[name] = by_asset
        if ids:
            reads._search_neighbours(catalog)
        return reads

    def _search_neighbours(self, catalog: Any) -> None:
        """Every searchable row's neighbours, then the rows their duplicate candidates are verified with."""
        for name, by_asset in self.own.items():
            rows = [
                (asset, row["segment_id"], row["vector"])
                for asset, own in by_asset.items()
                for row in searchable(own, "vector")
            ]
            self.found[name] = _by_asset(
                rows,
                _batch_neighbours(self.table(catalog, name), "vector", "segment_id", rows, SIMILAR_TOP_K),
            )
        texts = [
            (asset, seg["id"], seg["text_vector"])
            for asset, segments in self.segments.items()
            for seg in searchable(segments, "text_vector")
        ]
        self.found[layout.SEGMENTS_TABLE] = _by_asset(
            texts, _batch_neighbours(catalog.segments, "text_vector", "id", texts, SIMILAR_TOP_K)
        )
        learned = layout.vector_table_name("vision", EFFICIENTNET_SPACE)
        if learned not in self.names:
            return
        ids: set[str] = set()
        for name in (learned, layout.SHOT_FRAMES_TABLE):
            for asset, found in self.found.get(name, {}).items():
                own = searchable(self.own[name][asset], "vector")
                for row, neighbours in zip(own, found, strict=True):
                    close = [other for other, score in neighbours if score >= dup.CANDIDATE_COSINE]
                    if close:
                        ids.update([row["segment_id"], *close])
        if ids:
            self.verification = _Verification.read(
                catalog, self.table(catalog, learned), sorted(ids), self.names, self
            )


def _open(catalog: Any, name: str, batch: BatchReads | None) -> Any:
    return batch.table(catalog, name) if batch is not None else catalog.db.open_table(name)


def _own_rows(table: Any, name: str, asset_id: str, batch: BatchReads | None) -> list[dict[str, Any]]:
    """The asset's own rows (segment id and vector) of a vector table, in table order."""
    if batch is not None and name in batch.own:
        return batch.own[name].get(asset_id, [])
    lit = uuid_literal(asset_id, "asset_id")
    n = table.count_rows(f"asset_id = {lit}")
    if n == 0:
        return []
    return table.search().where(f"asset_id = {lit}").select(["segment_id", "vector"]).limit(n).to_list()


def searchable(rows: Sequence[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """The rows whose vector a neighbour search can use: present, and not all zeros (a text vector of a
    segment without text is zeros)."""
    return [r for r in rows if r.get(column) is not None and np.any(np.asarray(r[column]))]


def _by_asset(
    rows: Sequence[tuple[str, str, Any]], found: list[list[tuple[str, float]]]
) -> dict[str, list[list[tuple[str, float]]]]:
    out: dict[str, list[list[tuple[str, float]]]] = {}
    for (asset, _, _), neighbours in zip(rows, found, strict=True):
        out.setdefault(asset, []).append(neighbours)
    return out


# Query vectors per nearest-neighbour search: LanceDB answers several in one query, each exactly as it
# would alone, and computes the prefilter once for all of them (20 prefiltered queries on a 100,000-row
# indexed table: 661 ms one by one, 37 ms together, identical hits).
NEIGHBOUR_QUERY_VECTORS = 64
# Hits asked for per wanted neighbour. An IVF_HNSW_SQ index built for cosine reports `_distance` as the
# squared L2 distance of unit vectors (twice the cosine distance), rows appended since the index was built
# report the cosine distance, and one search returns both: the hits are re-ranked by their true cosine.
NEIGHBOUR_OVERFETCH = 2
# Rows of a batch compared with all of its rows at a time (a block of cells of the similarity matrix).
IN_BATCH_BLOCK_CELLS = 4_000_000


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _searched(
    table: Any, vector_column: str, id_column: str, vectors: np.ndarray, where: str, k: int
) -> list[list[tuple[str, float]]]:
    """The k rows passing `where` nearest to each of `vectors` (id, cosine similarity), best first."""
    out: list[list[tuple[str, float]]] = []
    for start in range(0, len(vectors), NEIGHBOUR_QUERY_VECTORS):
        chunk = list(vectors[start : start + NEIGHBOUR_QUERY_VECTORS])
        hits = (
            table.search(chunk if len(chunk) > 1 else chunk[0], vector_column_name=vector_column)
            .distance_type("cosine")
            .where(where, prefilter=True)
            .select([id_column, vector_column, "_distance"])  # asked for, or LanceDB warns per query
            .limit(k * NEIGHBOUR_OVERFETCH)
            .to_arrow()
        )
        found: list[list[tuple[str, float]]] = [[] for _ in chunk]
        hits = hits.filter(pc.is_valid(hits.column(vector_column)))  # a row without a vector is no neighbour
        if hits.num_rows:
            which = (
                np.asarray(hits.column("query_index").to_numpy(), dtype=np.int64)
                if "query_index" in hits.column_names
                else np.zeros(hits.num_rows, dtype=np.int64)
            )
            queries = _unit(np.asarray(chunk, dtype=np.float32))
            cosines = np.einsum("ij,ij->i", _unit(vector_matrix(hits.column(vector_column))), queries[which])
            for other, query, cosine in zip(hits.column(id_column).to_pylist(), which, cosines, strict=True):
                found[int(query)].append((other, float(cosine)))
        out.extend(sorted(near, key=lambda hit: (-hit[1], hit[0]))[:k] for near in found)
    return out


def _neighbours(
    table: Any, vector_column: str, id_column: str, vectors: Sequence[Any], asset_id: str, k: int
) -> list[list[tuple[str, float]]]:
    """The k nearest rows of other assets (id, cosine similarity) for each vector, best first."""
    if not len(vectors):
        return []
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
    not_own = f"asset_id != {uuid_literal(asset_id, 'asset_id')}"
    return _searched(table, vector_column, id_column, matrix, not_own, k)


def _batch_neighbours(
    table: Any, vector_column: str, id_column: str, rows: Sequence[tuple[str, str, Any]], k: int
) -> list[list[tuple[str, float]]]:
    """The k nearest rows of other assets (id, cosine similarity) for each (asset, id, vector) row of a
    batch, best first: what `_neighbours` finds for each asset on its own, in a handful of queries.

    Rows outside the batch come from one search for all the batch's vectors (`asset_id NOT IN batch`,
    `NEIGHBOUR_QUERY_VECTORS` at a time); the batch's own rows are compared exactly here, each with the
    rows of the batch's other assets. The two sets are disjoint, so the k best of their union are the k
    best of the table minus the asset's own rows, as the per-asset search with `asset_id != own` returns
    (exactly on an unindexed table; an index answers both approximately).
    """
    if not rows:
        return []
    assets = list(dict.fromkeys(asset for asset, _, _ in rows))
    vectors = np.stack([np.asarray(v, dtype=np.float32) for _, _, v in rows])
    outside = f"NOT ({in_list('asset_id', assets, uuids=True)})"
    found = _searched(table, vector_column, id_column, vectors, outside, k)
    if len(assets) > 1:
        position = {asset: i for i, asset in enumerate(assets)}
        owner = np.array([position[asset] for asset, _, _ in rows])
        unit = _unit(vectors)
        ids = [row_id for _, row_id, _ in rows]
        block = max(1, IN_BATCH_BLOCK_CELLS // len(rows))
        top = min(k, len(rows))
        for start in range(0, len(rows), block):
            sims = unit[start : start + block] @ unit.T
            sims[owner[start : start + block, None] == owner[None, :]] = -np.inf
            best = np.argpartition(-sims, top - 1, axis=1)[:, :top]
            for offset, columns in enumerate(best):
                found[start + offset].extend(
                    (ids[j], float(sims[offset, j])) for j in columns if np.isfinite(sims[offset, j])
                )
    return [sorted(near, key=lambda hit: (-hit[1], hit[0]))[:k] for near in found]


def _found(
    batch: BatchReads | None, name: str, asset_id: str, rows: Sequence[dict[str, Any]]
) -> list[list[tuple[str, float]]] | None:
    """The batch's neighbours of these rows of the asset (None when the batch did not search them)."""
    if batch is None or name not in batch.found:
        return None
    found = batch.found[name].get(asset_id, [])
    return found if len(found) == len(rows) else None


def similarity_edges(
    catalog: Any, asset_id: str, segments: list[dict[str, Any]], batch: BatchReads | None = None
) -> list[dict[str, Any]]:
    """SIMILAR_TO and DUPLICATE_OF candidates from the vision tables and the segment text vectors."""
    edges: list[dict[str, Any]] = []
    names = batch.names if batch is not None else sorted(table_names(catalog.db))
    learned = layout.vector_table_name("vision", EFFICIENTNET_SPACE)
    verified = learned in names
    for name in names:
        if not layout.is_vector_table(name):
            continue
        table = _open(catalog, name, batch)
        own = _own_rows(table, name, asset_id, batch)
        if not own:
            continue
        space = space_for_table(name)
        floor, threshold = similar_floor(space), duplicate_threshold(space)
        if verified:
            # With the learned embedding, duplicates come only from the verified rule (below): a single
            # cosine would call two black intros duplicates.
            threshold = None
        candidates: list[tuple[str, str, np.ndarray | None]] = []
        rows = searchable(own, "vector")
        found = _found(batch, name, asset_id, rows) or _neighbours(
            table, "vector", "segment_id", [r["vector"] for r in rows], asset_id, SIMILAR_TOP_K
        )
        for row, neighbours in zip(rows, found, strict=True):
            for other, score in neighbours:
                if score >= floor:
                    edges.append(
                        {
                            "kind": "SIMILAR_TO",
                            "src": row["segment_id"],
                            "dst": other,
                            "score": score,
                            "modality": space,
                        }
                    )
                if name == learned and score >= dup.CANDIDATE_COSINE:
                    candidates.append((row["segment_id"], other, np.asarray(row["vector"], dtype=np.float32)))
                if threshold is not None and score >= threshold:
                    edges.append(
                        {
                            "kind": "DUPLICATE_OF",
                            "src": row["segment_id"],
                            "dst": other,
                            "score": score,
                            "modality": space,
                        }
                    )
        if name == learned:
            candidates.extend(_frame_candidates(catalog, asset_id, names, batch))
            if candidates:
                edges.extend(_verified_duplicates(catalog, table, candidates, names, batch))
    text_floor = similar_floor("text")
    texts = searchable(segments, "text_vector")
    found = _found(batch, layout.SEGMENTS_TABLE, asset_id, texts) or _neighbours(
        catalog.segments, "text_vector", "id", [seg["text_vector"] for seg in texts], asset_id, SIMILAR_TOP_K
    )
    for seg, neighbours in zip(texts, found, strict=True):
        for other, score in neighbours:
            if score >= text_floor:
                edges.append(
                    {"kind": "SIMILAR_TO", "src": seg["id"], "dst": other, "score": score, "modality": "text"}
                )
    return edges


def _frame_candidates(
    catalog: Any, asset_id: str, names: list[str], batch: BatchReads | None = None
) -> list[tuple[str, str, None]]:
    """Shot pairs whose sampled frames (keyframe or others) are alike in the learned space: a trimmed copy's
    keyframe is another frame of the original shot, which the keyframe search alone can miss."""
    if layout.SHOT_FRAMES_TABLE not in names:
        return []
    table = _open(catalog, layout.SHOT_FRAMES_TABLE, batch)
    own = _own_rows(table, layout.SHOT_FRAMES_TABLE, asset_id, batch)
    if not own:
        return []
    pairs: set[tuple[str, str]] = set()
    own = searchable(own, "vector")
    found = _found(batch, layout.SHOT_FRAMES_TABLE, asset_id, own) or _neighbours(
        table, "vector", "segment_id", [r["vector"] for r in own], asset_id, SIMILAR_TOP_K
    )
    for row, neighbours in zip(own, found, strict=True):
        for other, score in neighbours:
            if score >= dup.CANDIDATE_COSINE:
                pairs.add((row["segment_id"], other))
    return [(a, b, None) for a, b in sorted(pairs)]


def _shot_frames(
    catalog: Any, ids: Sequence[str], names: Sequence[str], batch: BatchReads | None = None
) -> dict[str, list[tuple[float | None, dup.Signature]]]:
    """The stored sampled frames of these shots (keyframe included) with their times, in frame order.

    Stores written before the time-grid sampling hold 3 frames per shot at fixed fractions of its length,
    with their times: `duplicates.match_shots` aligns those as well."""
    if layout.SHOT_FRAMES_TABLE not in names:
        return {}
    rows = (
        _open(catalog, layout.SHOT_FRAMES_TABLE, batch)
        .search()
        .where(in_list("segment_id", ids, uuids=True))
        .select(["segment_id", "frame", "time", "vector", "descriptor", "signature"])
        .limit(None)
        .to_list()
    )
    out: dict[str, list[tuple[float | None, dup.Signature]]] = {}
    for r in sorted(rows, key=lambda r: (r["segment_id"], r["frame"] or 0)):
        out.setdefault(r["segment_id"], []).append(
            (r["time"], dup.Signature.from_stored(json.loads(r["signature"]), r["vector"], r["descriptor"]))
        )
    return out


@dataclass
class _Verification:
    """What verifying duplicate candidates reads of their segments, by segment id: learned vectors,
    descriptors, stored hashes, time spans and sampled frames (one query each for all of `ids`)."""

    ids: frozenset[str]
    learned: dict[str, np.ndarray]
    descriptors: dict[str, np.ndarray]
    hashes: dict[str, dict[str, Any]]
    spans: dict[str, tuple[str, float, float]]  # segment -> (asset, start, end)
    frames: dict[str, list[tuple[float | None, dup.Signature]]]

    @classmethod
    def read(
        cls,
        catalog: Any,
        learned_table: Any,
        ids: Sequence[str],
        names: Sequence[str],
        batch: BatchReads | None = None,
    ) -> _Verification:
        where = in_list("segment_id", ids, uuids=True)
        learned = {
            r["segment_id"]: np.asarray(r["vector"], dtype=np.float32)
            for r in learned_table.search()
            .where(where)
            .select(["segment_id", "vector"])
            .limit(len(ids))
            .to_list()
        }
        descriptor_name = layout.vector_table_name("vision", VISUAL_OFFLINE_SPACE)
        descriptors: dict[str, np.ndarray] = {}
        if descriptor_name in names:
            found = (
                _open(catalog, descriptor_name, batch).search().where(where).select(["segment_id", "vector"])
            )
            descriptors = {
                r["segment_id"]: np.asarray(r["vector"], np.float32) for r in found.limit(len(ids)).to_list()
            }
        hashes = {}
        spans = {}
        for r in (
            (
                catalog.segments.search()
                .where(in_list("id", ids, uuids=True))
                .select(["id", "asset_id", "start_time", "end_time", "semantic_features"])
            )
            .limit(len(ids))
            .to_list()
        ):
            spans[r["id"]] = (r["asset_id"], float(r["start_time"] or 0.0), float(r["end_time"] or 0.0))
            features = json.loads(r["semantic_features"] or "{}")
            if isinstance(features, dict) and isinstance(features.get("image_hashes"), dict):
                hashes[r["id"]] = features["image_hashes"]
        frames = _shot_frames(catalog, list(ids), names, batch)
        return cls(frozenset(ids), learned, descriptors, hashes, spans, frames)


def _verified_duplicates(
    catalog: Any,
    learned_table: Any,
    candidates: list[tuple[str, str, np.ndarray | None]],
    names: list[str],
    batch: BatchReads | None = None,
) -> list[dict[str, Any]]:
    """DUPLICATE_OF edges for candidate pairs that pass `duplicates.duplicate_scores` (hashes, thumbnails,
    descriptor and learned embedding; flat frames never pass). Shots with stored sampled frames are
    compared frame by frame at their best time offset (`duplicates.match_shots`), and the edge carries the
    span each shares with the other. Score: the verification probability."""
    ids = sorted({a for a, _, _ in candidates} | {b for _, b, _ in candidates})
    held_rows = batch.verification if batch is not None else None
    if held_rows is not None and held_rows.ids.issuperset(ids):
        rows = held_rows
    else:
        rows = _Verification.read(catalog, learned_table, ids, names, batch)
    learned, descriptors, stored, spans = rows.learned, rows.descriptors, rows.hashes, rows.spans
    signatures: dict[str, dup.Signature] = {}
    all_descriptors = all(sid in descriptors for sid in ids)  # one kind of vector for every pair
    held = batch.signatures if batch is not None else {}
    for sid in ids:
        if (sid, all_descriptors) in held:
            signatures[sid] = held[(sid, all_descriptors)]
        elif sid in stored and sid in learned and "thumb" in stored[sid]:
            # With CLIP as the vision space there is no descriptor table: the learned vector stands in.
            # The fitted descriptor weight is 0.02, so this moves the verification logit by < 0.02.
            descriptor = descriptors[sid] if all_descriptors else learned[sid]
            signatures[sid] = dup.Signature.from_stored(stored[sid], learned[sid], descriptor)
            held[(sid, all_descriptors)] = signatures[sid]
    frames = rows.frames

    def shot(sid: str) -> dup.Shot | None:
        asset, start, end = spans.get(sid, ("", 0.0, 0.0))
        sampled = frames.get(sid) or ([(None, signatures[sid])] if sid in signatures else [])
        if not sampled:
            return None
        times = tuple(t for t, _ in sampled)
        known = all(t is not None for t in times)  # frames without a time (no fps) are compared unaligned
        return dup.Shot(sid, asset, start, end, tuple(f for _, f in sampled), times if known else ())  # type: ignore[arg-type]

    edges = []
    for a, b in dict.fromkeys((a, b) for a, b, _ in candidates):
        sa, sb = shot(a), shot(b)
        if sa is None or sb is None:
            continue
        match = dup.match_shots(sa, sb)
        if match is not None:
            # The span each segment shares with the other, in the edge's own order (src then dst).
            forward = match.segment_a == a
            mine, theirs = (match.match_a, match.match_b) if forward else (match.match_b, match.match_a)
            edges.append(
                {
                    "kind": "DUPLICATE_OF",
                    "src": a,
                    "dst": b,
                    "score": match.score,
                    "modality": "verified",
                    # Only shots with timed frames have spans (pictures and untimed frames: none).
                    "spans": [*mine, *theirs] if sa.times and sb.times and mine and theirs else None,
                }
            )
    return edges


def write_contribution(store: ObjectStore, asset_id: str, edges: list[dict[str, Any]]) -> str:
    """Store one asset's edges as a single object (a reader sees the old one or the new one); returns its key."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(edges, schema=CONTRIB_SCHEMA), sink)
    key = contrib_key(asset_id)
    store.put_bytes(key, sink.getvalue().to_pybytes())
    return key


def graph_contribution(
    settings: Settings,
    catalog: Any,
    asset_id: str,
    *,
    store: ObjectStore | None = None,
    batch: BatchReads | None = None,
) -> dict[str, Any]:
    """Compute and store one asset's graph edges; returns counts for the run's metadata. `batch` holds
    the asset's own rows when a batch of assets read them together (`BatchReads.read`)."""
    store = store if store is not None else open_object_store(settings)
    if batch is not None and asset_id in batch.segments:
        segments = batch.segments[asset_id]
        exists = asset_id in batch.existing
    else:
        segments = catalog.segments_for(asset_id, with_vectors=True)
        exists = catalog.get_asset(asset_id) is not None
    if not exists:
        store.delete(contrib_key(asset_id))
        return {"asset_id": asset_id, "segments": 0, "edges": {}, "removed": True}
    edges = temporal_edges(segments) + overlap_edges(segments)
    for seg in segments:
        for concept, confidence in segment_concepts(seg).items():
            edges.append(
                {"kind": "TAGGED", "src": seg["id"], "dst": concept, "score": confidence, "modality": None}
            )
    edges.extend(similarity_edges(catalog, asset_id, segments, batch))
    key = write_contribution(store, asset_id, edges)
    counts: dict[str, int] = {}
    for edge in edges:
        counts[edge["kind"]] = counts.get(edge["kind"], 0) + 1
    return {"asset_id": asset_id, "segments": len(segments), "edges": counts, "key": key}


def list_contributions(store: ObjectStore) -> dict[str, ObjectInfo]:
    """Asset id -> listing (etag, LastModified) of every contribution object: one listing of the prefix."""
    out = {}
    for info in store.list(CONTRIB_PREFIX):
        name = info.key[len(CONTRIB_PREFIX) :]
        if "/" in name or name.startswith(".") or not name.endswith(".parquet"):
            continue
        out[name[: -len(".parquet")]] = info
    return out


def fetch_contributions(store: ObjectStore, asset_ids: Iterable[str]) -> tuple[pa.Table, set[str]]:
    """The edges of these assets' contributions and the ids whose object could be read (one GET each)."""

    def fetch(asset_id: str) -> pa.Table | None:
        try:
            data = store.get_bytes(contrib_key(asset_id))
        except ObjectMissing:
            return None  # removed by a delete between listing and reading
        return pq.read_table(pa.BufferReader(data), schema=CONTRIB_SCHEMA)

    ids = sorted(set(asset_ids))
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        found = [(a, t) for a, t in zip(ids, pool.map(fetch, ids), strict=True) if t is not None]
    read = {a for a, _ in found}
    if not found:
        return CONTRIB_SCHEMA.empty_table(), read
    return pa.concat_tables([t for _, t in found]), read


def read_contributions(store: ObjectStore, exclude: set[str] | frozenset[str] = frozenset()) -> pa.Table:
    """All contribution edges in the object store, except those of excluded (deleted) assets."""
    listed = list_contributions(store)
    return fetch_contributions(store, [a for a in listed if a not in exclude])[0]
