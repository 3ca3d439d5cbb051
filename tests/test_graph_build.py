"""The media graph built from real Lance rows: nodes, relations, queries, injection and deletion."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from graph_support import SegmentSpec, add_asset, delete_vectors, picture, text_vector
from picture_edits import crop, resize

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.graph.contrib import graph_contribution
from dataflux_pipelines.graph.store import (
    GraphError,
    GraphReader,
    collect_snapshots,
    contrib_key,
    list_snapshots,
    live_snapshot,
    related_assets,
    relationships,
    tombstone_key,
    write_tombstone,
)
from dataflux_pipelines.identity import collection_id_for
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.settings import Settings


@pytest.fixture
def library(settings: Settings) -> dict:
    catalog = Catalog(settings)
    trips = collection_id_for("trips", False)
    coll = catalog.table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA)
    coll.add([{"id": trips, "name": "trips", "auto_generated": False, "asset_ids": []}])
    doc_base = text_vector(100)
    ids = {}
    ids["photo"], _ = add_asset(
        catalog,
        "photo.png",
        "image",
        [SegmentSpec(picture(1), {"dark": 0.8, "outdoor": 0.6})],
        collection_id=trips,
    )
    ids["photo_small"], _ = add_asset(
        catalog, "photo_small.jpg", "image", [SegmentSpec(resize(picture(1), 0.5), {"outdoor": 0.7})]
    )
    ids["other"], _ = add_asset(catalog, "other.png", "image", [SegmentSpec(picture(2), {"dark": 0.9})])
    ids["clip1"], ids["clip1_shots"] = add_asset(
        catalog,
        "clip1.mp4",
        "video",
        [SegmentSpec(picture(10), {"fast-paced": 0.7}), SegmentSpec(picture(11)), SegmentSpec(picture(12))],
        duration=6.0,
    )
    ids["clip2"], ids["clip2_shots"] = add_asset(
        catalog,
        "clip2.mp4",
        "video",
        [SegmentSpec(crop(picture(11), 0.1)), SegmentSpec(picture(13))],
        duration=4.0,
    )
    ids["doc"], ids["doc_chunks"] = add_asset(
        catalog,
        "notes.pdf",
        "document",
        [
            SegmentSpec(text="harbour cranes at dawn", text_vector=doc_base, concepts={"harbour": 0.9}),
            SegmentSpec(text="ship manifests", text_vector=text_vector(101)),
        ],
    )
    ids["doc2"], _ = add_asset(
        catalog,
        "notes2.pdf",
        "document",
        [SegmentSpec(text="cranes in the harbour", text_vector=text_vector(102, doc_base, 0.9))],
    )
    for asset_id in [v for k, v in ids.items() if not k.endswith(("_shots", "_chunks"))]:
        graph_contribution(settings, catalog, asset_id)
    ids["trips"] = trips
    ids["catalog"] = catalog
    return ids


def _publish(settings: Settings, catalog: Catalog, **kw):
    return publish_graph(settings, catalog, **kw)


def test_graph_from_lance_rows_has_the_expected_nodes_and_relations(
    settings: Settings, library: dict
) -> None:
    report = _publish(settings, library["catalog"])
    assert report.build.nodes == {"Asset": 7, "Segment": 11, "Collection": 1, "Concept": 4}
    reader = GraphReader(settings.graph_dir)
    counts = reader.counts()
    assert counts["nodes"] == report.build.nodes
    assert counts["relations"]["HAS_SEGMENT"] == 11
    # clip1: 2 NEXT, clip2: 1, notes.pdf: 1
    assert counts["relations"]["NEXT"] == 4
    assert counts["relations"]["IN_COLLECTION"] == 1
    first, second = library["clip1_shots"][:2]
    nxt = reader.query(
        "MATCH (a:Segment)-[n:NEXT]->(b:Segment) WHERE a.id = $id RETURN b.id AS b, n.gap AS gap",
        {"id": first},
    )
    assert nxt == [{"b": second, "gap": 0.0}]
    tagged = reader.query(
        "MATCH (a:Asset)-[t:TAGGED]->(c:Concept) WHERE a.id = $id RETURN c.id AS name, t.confidence AS conf ORDER BY name",
        {"id": library["photo"]},
    )
    assert tagged == [{"name": "dark", "conf": 0.8}, {"name": "outdoor", "conf": 0.6}]
    dup = reader.query(
        "MATCH (a:Asset)-[d:DUPLICATE_OF]-(b:Asset) RETURN a.id AS a, b.id AS b, d.shared_segments AS n"
    )
    pairs = {frozenset((r["a"], r["b"])) for r in dup}
    assert frozenset((library["photo"], library["photo_small"])) in pairs
    assert frozenset((library["photo"], library["other"])) not in pairs
    text_sim = reader.query(
        "MATCH (a:Asset)-[s:SIMILAR_TO]-(b:Asset) WHERE a.id = $id AND s.modality = 'text' RETURN b.id AS b",
        {"id": library["doc"]},
    )
    assert {r["b"] for r in text_sim} == {library["doc2"]}


def test_videos_sharing_a_shot_are_related_with_how_many_and_which(settings: Settings, library: dict) -> None:
    _publish(settings, library["catalog"])
    reader = GraphReader(settings.graph_dir)
    out = reader.query(
        "MATCH (a:Asset)-[d:DUPLICATE_OF]-(b:Asset) WHERE a.id = $id "
        "RETURN b.id AS b, d.shared_segments AS n, d.segment_pairs AS pairs",
        {"id": library["clip1"]},
    )
    assert len(out) == 1 and out[0]["b"] == library["clip2"] and out[0]["n"] == 1
    shared = out[0]["pairs"][0].split(":")
    assert set(shared) == {library["clip1_shots"][1], library["clip2_shots"][0]}
    assert related_assets(reader, [library["clip1"]])[library["clip1"]][0]["asset_id"] == library["clip2"]


def test_relationships_follow_only_the_requested_types_to_the_requested_depth(
    settings: Settings, library: dict
) -> None:
    _publish(settings, library["catalog"])
    reader = GraphReader(settings.graph_dir)
    one = relationships(reader, library["photo"], depth=1, types=["TAGGED"])
    assert {n["id"] for n in one["nodes"]} == {library["photo"], "dark", "outdoor"}
    assert all(e["type"] == "TAGGED" and e["source"] == library["photo"] for e in one["edges"])
    two = relationships(reader, library["photo"], depth=2, types="TAGGED")
    assert {library["other"], library["photo_small"]} <= {n["id"] for n in two["nodes"]}
    coll = relationships(reader, library["trips"], depth=1)
    assert [n["id"] for n in coll["nodes"] if n["type"] == "Asset"] == [library["photo"]]
    concept = relationships(reader, "dark", depth=1, types=["TAGGED"])
    assert concept["entity"]["type"] == "Concept"


INJECTIONS = [
    ("x' OR 1=1 --", 1, None, "invalid_entity_id"),
    ("a}) MATCH (n) DETACH DELETE n //", 1, None, "invalid_entity_id"),
    ('dark"', 1, None, "invalid_entity_id"),
    ("dark", 1, ["TAGGED]-() MATCH (n) DETACH DELETE n //"], "invalid_relation_type"),
    ("dark", 1, "TAGGED|HAS_SEGMENT*1..9", "invalid_relation_type"),
    ("dark", 4, None, "invalid_depth"),
    ("dark", "1; DROP", None, "invalid_depth"),
    ("dark", True, None, "invalid_depth"),
    ("no-such-thing", 1, None, "not_found"),
]


def test_injection_attempts_in_ids_types_and_depth_are_rejected_and_change_nothing(
    settings: Settings, library: dict
) -> None:
    _publish(settings, library["catalog"])
    reader = GraphReader(settings.graph_dir)
    before = reader.counts()
    for entity_id, depth, types, code in INJECTIONS:
        with pytest.raises(GraphError) as err:
            relationships(reader, entity_id, depth, types)
        assert err.value.code == code, (entity_id, depth, types)
    assert reader.counts() == before


def test_deleting_an_asset_leaves_no_graph_trace_after_the_next_publish(
    settings: Settings, library: dict
) -> None:
    catalog = library["catalog"]
    _publish(settings, catalog)
    victim = library["clip2"]
    # What delete_asset does: rows and vectors go, a tombstone asks the graph to drop the asset.
    catalog.delete_asset_rows(victim)
    delete_vectors(catalog, victim)
    store = open_object_store(settings)
    write_tombstone(store, victim)
    reader = GraphReader.for_settings(settings)
    # Readers hide the asset at once, before the next publication.
    with pytest.raises(GraphError):
        relationships(reader, victim)
    assert all(n["id"] != victim for n in relationships(reader, library["clip1"], 2)["nodes"])

    report = _publish(settings, catalog)
    assert victim in report.tombstones_applied
    assert store.head(tombstone_key(victim)) is None and store.head(contrib_key(victim)) is None
    # Relations cannot outlive their nodes, so no node means no relation either.
    assert reader.query("MATCH (a:Asset) WHERE a.id = $id RETURN count(a) AS n", {"id": victim}) == [{"n": 0}]
    assert reader.query("MATCH (s:Segment) WHERE s.asset_id = $id RETURN count(s) AS n", {"id": victim}) == [
        {"n": 0}
    ]
    everything = relationships(reader, library["clip1"], depth=3)
    assert victim not in {n["id"] for n in everything["nodes"]}
    assert not set(library["clip2_shots"]) & {n["id"] for n in everything["nodes"]}
    assert (
        reader.query(
            "MATCH (a:Asset)-[:DUPLICATE_OF]-(b:Asset) WHERE a.id = $id RETURN b.id", {"id": library["clip1"]}
        )
        == []
    )


def test_gc_keeps_the_live_snapshot_and_an_open_reader_survives_its_file_being_removed(
    settings: Settings, library: dict
) -> None:
    catalog = library["catalog"]
    _publish(settings, catalog)
    reader = GraphReader(settings.graph_dir)
    with reader.connection() as conn:
        old = live_snapshot(settings.graph_dir)
        for _ in range(3):
            _publish(settings, catalog, keep=1, grace_s=0.0)
        assert not old.path.exists()  # collected while this reader still had it open
        assert conn.execute("MATCH (a:Asset) RETURN count(a)").get_next() == [7]
    assert [s.version for s in list_snapshots(settings.graph_dir)] == [
        live_snapshot(settings.graph_dir).version
    ]
    assert reader.snapshot.version == 4
    recent = _publish(settings, catalog, keep=1, grace_s=3600.0)
    assert len(list_snapshots(settings.graph_dir)) == 2  # the older one is still inside its grace period
    os.utime(list_snapshots(settings.graph_dir)[0].path, (0, 0))
    assert collect_snapshots(settings.graph_dir, keep=1, grace_s=3600.0) and recent.snapshot.path.exists()
    assert not any(Path(p).suffix == ".wal" for p in os.listdir(settings.graph_dir / "snapshots"))


@pytest.mark.parametrize("kept", [0, 1, 3])
def test_superseded_snapshots_are_pruned_to_the_configured_few_at_each_publication(
    settings: Settings, library: dict, kept: int
) -> None:
    settings = dataclasses.replace(settings, graph_snapshots_kept=kept)
    for _ in range(6):
        report = _publish(settings, library["catalog"])
    versions = [s.version for s in list_snapshots(settings.graph_dir)]
    live = live_snapshot(settings.graph_dir)
    assert live is not None and live.version == report.snapshot.version == 6
    assert versions == list(range(6 - kept, 7))
    on_disk = sorted(p.name for p in (settings.graph_dir / "snapshots").iterdir())
    assert on_disk == [f"v{v:06d}.kuzu" for v in versions]  # no building leftovers either


def test_the_grace_period_runs_from_when_a_snapshot_was_superseded_not_when_it_was_built(
    settings: Settings, library: dict
) -> None:
    settings = dataclasses.replace(settings, graph_snapshots_kept=0, graph_snapshot_grace_s=3600.0)
    first = _publish(settings, library["catalog"]).snapshot
    os.utime(first.path, (0, 0))  # built long ago
    _publish(settings, library["catalog"])
    assert first.path.exists()  # but superseded just now: still inside its grace period
    os.utime(first.path, (0, 0))  # superseded long ago
    _publish(settings, library["catalog"])
    assert [s.version for s in list_snapshots(settings.graph_dir)] == [2, 3]


def test_a_reader_whose_resolved_snapshot_was_collected_before_it_opened_it_reads_the_live_one(
    settings: Settings, library: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(settings, graph_snapshots_kept=0)
    stale = _publish(settings, library["catalog"]).snapshot
    _publish(settings, library["catalog"])
    assert not stale.path.exists()
    from dataflux_pipelines.graph import store as graph_store

    answers = [stale]  # what a reader that read the pointer just before the publication holds
    real = graph_store.live_snapshot
    monkeypatch.setattr(graph_store, "live_snapshot", lambda d: answers.pop() if answers else real(d))
    reader = GraphReader(settings.graph_dir)
    assert reader.snapshot.version == 2
    with reader.connection() as conn:
        assert conn.execute("MATCH (a:Asset) RETURN count(a)").get_next() == [7]


def _edges(table) -> dict[tuple, float | None]:
    """A contribution's edges by (kind, src, dst, modality, spans) with their scores."""
    return {
        (e["kind"], e["src"], e["dst"], e["modality"], tuple(e["spans"] or ())): e["score"]
        for e in table.to_pylist()
    }


def test_a_batch_reading_its_rows_together_writes_the_contributions_each_file_writes_alone(
    settings: Settings, library: dict
) -> None:
    """The same edges with the same scores (to 1e-6: the batch compares its own rows with numpy, the
    per-file search has LanceDB compute the same cosines)."""
    import io

    import pyarrow.parquet as pq

    from dataflux_pipelines.graph.contrib import BatchReads

    store = open_object_store(settings)
    catalog = library["catalog"]
    assets = [v for k, v in library.items() if isinstance(v, str) and k != "trips"]
    alone = {a: pq.read_table(io.BytesIO(store.get_bytes(contrib_key(a)))) for a in assets}
    gone = "00000000-0000-5000-8000-000000000000"  # not in the catalog: its contribution is removed
    batch = BatchReads.read(catalog, [*assets, gone])
    assert set(batch.segments) == {*assets, gone} and gone not in batch.existing
    # Ids are answered under the spelling asked for (stored lower-case), as one asset's read always was.
    doc = library["doc"]
    assert catalog.segments_for(doc.upper()) == catalog.segments_for(doc) != []
    assert catalog.segments_for(doc.upper(), with_vectors=True) == batch.segments[doc]
    for a in assets:
        store.delete(contrib_key(a))
        graph_contribution(settings, catalog, a, store=store, batch=batch)
        together = pq.read_table(io.BytesIO(store.get_bytes(contrib_key(a))))
        assert together.num_rows and _edges(together) == pytest.approx(_edges(alone[a]), abs=1e-6), a
    assert graph_contribution(settings, catalog, gone, store=store, batch=batch)["removed"]
    kinds = {k for t in alone.values() for k in t.column("kind").to_pylist()}
    assert {"SIMILAR_TO", "DUPLICATE_OF", "NEXT", "TAGGED"} <= kinds  # every kind of read was compared


@pytest.mark.parametrize("indexed", [False, True])
def test_neighbours_of_many_vectors_in_one_query_are_each_vectors_own_neighbours(
    tmp_path: Path, indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lancedb
    import numpy as np
    import pyarrow as pa
    from lancedb.index import HnswSq

    from dataflux_pipelines.graph import contrib

    rng = np.random.default_rng(4)
    n = 1200
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    assets = [f"{i % 40:08d}-0000-5000-8000-000000000000" for i in range(n)]
    table = lancedb.connect(tmp_path / "db").create_table(
        "vision__t",
        pa.table({"segment_id": [f"s{i}" for i in range(n)], "asset_id": assets, "vector": list(vectors)}),
    )
    if indexed:
        table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=2))
    own = assets[0]
    queries = [vectors[i] for i in range(0, 200, 5)]
    monkeypatch.setattr(contrib, "NEIGHBOUR_QUERY_VECTORS", 16)  # 40 vectors: chunks of 16, 16 and 8
    together = contrib._neighbours(table, "vector", "segment_id", queries, own, 10)
    alone = [contrib._neighbours(table, "vector", "segment_id", [q], own, 10)[0] for q in queries]
    assert together == alone
    assert all(len(hits) == 10 for hits in alone)
    assert not {sid for hits in alone for sid, _ in hits} & {
        f"s{i}" for i in range(0, n, 40)
    }  # never its own asset


@pytest.mark.parametrize("indexed", [False, True])
def test_a_batch_searching_its_rows_together_finds_each_assets_own_neighbours(
    tmp_path: Path, indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's search (other assets outside it from one query, its own rows compared exactly) finds
    what each asset's own search with `asset_id != own` finds: the same rows with the same scores on an
    unindexed table, nearly all of them through an approximate index."""
    import lancedb
    import numpy as np
    import pyarrow as pa
    from lancedb.index import HnswSq

    from dataflux_pipelines.graph import contrib

    rng = np.random.default_rng(5)
    n = 1200
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    assets = [f"{i % 40:08d}-0000-5000-8000-000000000000" for i in range(n)]
    ids = [f"s{i}" for i in range(n)]
    schema = pa.schema(
        [("segment_id", pa.string()), ("asset_id", pa.string()), ("vector", pa.list_(pa.float32(), 32))]
    )
    table = lancedb.connect(tmp_path / "db").create_table(
        "vision__t", pa.table({"segment_id": ids, "asset_id": assets, "vector": list(vectors)}, schema=schema)
    )
    # Rows without a vector (a segment whose keyframe could not be embedded) are never anyone's neighbour.
    table.add(
        pa.table(
            {
                "segment_id": ["no-vector-1", "no-vector-2"],
                "asset_id": [assets[7], assets[0]],
                "vector": [None, None],
            },
            schema=schema,
        )
    )
    if indexed:
        table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=2))
    batch = set(assets[:6])  # six assets of 30 rows each: their neighbours lie inside and outside the batch
    rows = [(a, sid, v) for a, sid, v in zip(assets, ids, vectors, strict=True) if a in batch]
    monkeypatch.setattr(contrib, "NEIGHBOUR_QUERY_VECTORS", 64)  # 180 rows: chunks of 64, 64 and 52
    monkeypatch.setattr(contrib, "IN_BATCH_BLOCK_CELLS", 180 * 50)  # the exact comparison in blocks too
    together = contrib._batch_neighbours(table, "vector", "segment_id", rows, 10)
    alone = [contrib._neighbours(table, "vector", "segment_id", [v], a, 10)[0] for a, _, v in rows]
    assert all(len(hits) == 10 for hits in together)
    own = {sid: a for a, sid in zip(assets, ids, strict=True)}
    assert all(own[other] != a for (a, _, _), hits in zip(rows, together, strict=True) for other, _ in hits)
    assert not any(other.startswith("no-vector") for hits in [*together, *alone] for other, _ in hits)
    inside = sum(own[other] in batch for hits in together for other, _ in hits)
    assert 0 < inside < 180 * 10  # both ways of finding a neighbour were used
    # Scores are cosine similarities, index or not (an index built for cosine reports squared L2 distances).
    unit = {sid: v / np.linalg.norm(v) for sid, v in zip(ids, vectors, strict=True)}
    for (_, sid, _), t, a in zip(rows, together, alone, strict=True):
        for other, score in [*t, *a]:
            assert score == pytest.approx(float(unit[sid] @ unit[other]), abs=1e-5)
    if indexed:
        same = sum(len({o for o, _ in t} & {o for o, _ in a}) for t, a in zip(together, alone, strict=True))
        assert same >= 0.9 * 180 * 10
    else:
        for t, a in zip(together, alone, strict=True):
            assert [o for o, _ in t] == [o for o, _ in a]
            assert [s for _, s in t] == pytest.approx([s for _, s in a], abs=1e-6)
