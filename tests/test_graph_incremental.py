"""The incremental graph publication gives, table for table, the graph a full rebuild of the same inputs gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import kuzu
from graph_support import SegmentSpec, add_asset, graph_tables, picture, text_vector
from media_factory import make_text
from picture_edits import resize

from dataflux_pipelines import layout, records
from dataflux_pipelines.auto_collections import refresh_auto_collections
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import PublishReport, build_graph, load_inputs, publish_graph
from dataflux_pipelines.graph.contrib import graph_contribution
from dataflux_pipelines.graph.schema import FORMAT_ROW, GRAPH_FORMAT
from dataflux_pipelines.graph.store import publish_snapshot
from dataflux_pipelines.identity import collection_id_for
from dataflux_pipelines.landing import delete_asset, ingest_paths
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.pipeline import STAGES, MediaPipeline
from dataflux_pipelines.settings import Settings


def ingest(settings: Settings, paths: list[Path]) -> list[str]:
    store, catalog = open_object_store(settings), Catalog(settings)
    return [receipt.asset_id for _, receipt in ingest_paths(store, catalog, paths)]


def process(settings: Settings, asset_ids: list[str], stages: tuple[str, ...] = STAGES) -> None:
    """What a run does for its files: status, every stage in order, then the final status."""
    with MediaPipeline(settings) as pipeline:
        pipeline.mark_processing(asset_ids)
        outcomes = {}
        for stage in stages:
            outcomes = getattr(pipeline, stage)(asset_ids)
            assert all(o.ok for o in outcomes.values()), (stage, outcomes)
        if stages == STAGES:
            pipeline.mark_done(outcomes)


def full_rebuild(settings: Settings, report: PublishReport, path: Path) -> dict[str, list[str]]:
    """The whole graph built from scratch out of the inputs the publication read."""
    inputs = load_inputs(settings, Catalog(settings), set(report.tombstones_applied))
    db = kuzu.Database(str(path))
    conn = kuzu.Connection(db)
    build_graph(conn, inputs)
    conn.close()
    db.close()
    return graph_tables(path)


def test_each_incremental_publication_equals_a_full_rebuild_of_the_same_inputs(
    settings: Settings, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = []
    for seed in range(8):
        path = inbox / f"picture{seed}.png"
        picture(seed % 6).save(path) if seed < 6 else resize(picture(seed - 6), 0.6).save(path)
        files.append(path)
    files += [make_text(inbox / f"note{i}.txt", words=120 + 40 * i) for i in range(4)]
    catalog = Catalog(settings)
    steps: list[tuple[str, PublishReport]] = []
    seen: dict[str, int] = {}

    def publish_and_compare(step: str) -> PublishReport:
        report = publish_graph(settings, catalog, min_assets=0)
        expected = full_rebuild(settings, report, tmp_path / f"full-{len(steps)}.kuzu")
        got = graph_tables(report.snapshot.path)
        assert set(got) == set(expected), step
        for table in expected:
            assert got[table] == expected[table], (step, table)
            seen[table] = max(seen.get(table, 0), len(expected[table]))
        steps.append((step, report))
        return report

    first = ingest(settings, files[:7])
    process(settings, first)
    refresh_auto_collections(catalog)
    assert publish_and_compare("first files").mode == "full"  # nothing to copy yet

    more = ingest(settings, files[7:])  # a resized copy of picture 1, and the notes
    process(settings, more)
    report = publish_and_compare("more files")
    assert (report.mode, report.assets_applied) == ("incremental", 5)

    process(settings, [first[2]])  # reprocessed: contribution rewritten, status round trip
    report = publish_and_compare("one reprocessed")
    assert (report.mode, report.assets_applied) == ("incremental", 1)

    # A run in flight: status processing and new segments, no contribution yet.
    process(settings, [more[0]], stages=STAGES[:2])
    assert publish_and_compare("one in flight").mode == "incremental"
    process(settings, [more[0]])  # finished: applied with the next publication's changes

    store = open_object_store(settings)
    victim = first[1]  # picture 1 has a resized copy: duplicate and similar edges point at it
    assert delete_asset(settings, store, catalog, victim)
    assert delete_asset(settings, store, catalog, more[4])  # the only note with its concepts
    report = publish_and_compare("two deleted")
    assert report.mode == "incremental" and report.tombstones_applied == sorted([victim, more[4]])
    assert report.build.nodes["Concept"] < steps[-2][1].build.nodes["Concept"]

    assert ingest(settings, [files[1]]) == [victim]
    process(settings, [victim])
    report = publish_and_compare("the deleted one ingested again")
    assert (report.mode, report.assets_applied) == ("incremental", 1)

    # Deleted and uploaded again before any publication.
    assert delete_asset(settings, store, catalog, first[3])
    assert ingest(settings, [files[3]]) == [first[3]]
    process(settings, [first[3]])
    assert publish_and_compare("deleted and back before a publication").mode == "incremental"

    # Collections: a user collection with members, an asset's own collection, auto collections again.
    trips = collection_id_for("trips", False)
    table = catalog.table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA)
    now = dt.datetime.now(dt.UTC)
    table.add(
        [
            {
                "id": trips,
                "name": "trips",
                "auto_generated": False,
                "asset_ids": [first[0], more[1]],
                "created_at": now,
                "updated_at": now,
            }
        ]
    )
    catalog.update_assets({first[4]: {"collection_id": trips}})
    refresh_auto_collections(catalog)
    report = publish_and_compare("collections changed")
    assert (report.mode, report.assets_applied) == ("incremental", 1)
    table.update(where=f"id = '{trips}'", values={"name": "holidays", "asset_ids": [more[1]]})
    report = publish_and_compare("collection renamed and a member left")
    assert (report.mode, report.assets_applied) == ("incremental", 0)

    # The comparison covered every kind of row, not empty tables.
    for table_name in ("Asset", "Segment", "Collection", "Concept", "HAS_SEGMENT", "NEXT", "TAGGED"):
        assert seen[table_name] > 0, table_name
    for table_name in ("SIMILAR_TO", "DUPLICATE_OF", "IN_COLLECTION", "_Manifest", "_CANDIDATE"):
        assert seen[table_name] > 0, table_name


def test_a_snapshot_without_a_manifest_of_another_format_or_with_most_assets_changed_is_rebuilt_whole(
    settings: Settings,
) -> None:
    catalog = Catalog(settings)

    def add(n: int) -> None:
        for i in range(n):
            seed = len(catalog.assets.to_arrow())
            asset_id, _ = add_asset(
                catalog,
                f"doc{seed}.pdf",
                "document",
                [SegmentSpec(text=f"note {i}", text_vector=text_vector(seed))],
            )
            graph_contribution(settings, catalog, asset_id)

    add(4)
    assert publish_graph(settings, catalog, min_assets=0).full_reason == "no live snapshot"
    report = publish_graph(settings, catalog, min_assets=0)
    assert (report.mode, report.assets_applied) == ("incremental", 0)
    add(2)
    report = publish_graph(settings, catalog, min_assets=0)
    assert (report.mode, report.assets_applied) == ("incremental", 2)

    # A snapshot written by another format of the build, or by the build before manifests.
    publish_snapshot(
        settings.graph_dir,
        lambda c: c.execute(f"MATCH (m:_Manifest) WHERE m.id = '{FORMAT_ROW}' SET m.etag = '0'"),
        copy_live=True,
    )
    report = publish_graph(settings, catalog, min_assets=0)
    assert (report.mode, report.full_reason) == (
        "full",
        f"the live snapshot is of format 0, this build writes {GRAPH_FORMAT}",
    )
    # The format row is bookkeeping, not an asset: the next publication applies nothing for it.
    assert publish_graph(settings, catalog, min_assets=0).assets_applied == 0
    publish_snapshot(settings.graph_dir, lambda c: c.execute("DROP TABLE _Manifest"), copy_live=True)
    assert publish_graph(settings, catalog, min_assets=0).full_reason == "the live snapshot has no manifest"
    assert publish_graph(settings, catalog, min_assets=0).mode == "incremental"

    add(4)  # 4 of 10 changed: applied; 11 of 21 is more than half
    assert publish_graph(settings, catalog, min_assets=0).mode == "incremental"
    add(11)
    report = publish_graph(settings, catalog, min_assets=0)
    assert (report.mode, report.full_reason, report.assets_applied) == ("full", "11 of 21 assets changed", 21)
    assert publish_graph(settings, catalog, full=True).full_reason == "a full build was asked for"
    # By default a small library is rebuilt whole: cheaper than the checkpoint of a changed copy.
    add(1)
    assert publish_graph(settings, catalog).full_reason == "22 assets, fewer than 200"
