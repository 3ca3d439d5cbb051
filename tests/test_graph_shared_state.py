"""Tombstones and contributions live in the object store, so the machine that deletes (the API), the
machines that process files and the graph writer need not share a home folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from media_factory import make_image

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.graph.store import (
    GraphError,
    GraphReader,
    contrib_key,
    read_tombstones,
    relationships,
    remove_reflected_tombstones,
    tombstone_key,
    tombstoned_ids,
    write_tombstone,
)
from dataflux_pipelines.identity import asset_id_for_hash, sha256_file
from dataflux_pipelines.landing import delete_asset, ingest_paths
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.pipeline import STAGES, MediaPipeline
from dataflux_pipelines.settings import REPO_ROOT, Settings


def machine(root: Path, shared: Path) -> Settings:
    """One machine: its own home and Dagster home; the object store and Lance folder are shared."""
    (root / "dagster_home").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    return Settings.from_env(
        {
            "DATAFLUX_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DATAFLUX_OBJECT_STORE_URL": f"file://{shared / 'store'}",
            "DATAFLUX_LANCE_URI": str(shared / "lance"),
            "DATAFLUX_PUBLISHED_POLL_S": "0",
        }
    )


def ingest(settings: Settings, path: Path) -> str:
    [(_, receipt)] = list(ingest_paths(open_object_store(settings), Catalog(settings), [path]))
    return receipt.asset_id


def process(settings: Settings, asset_id: str) -> None:
    """What a run worker does for one partition: every per-file stage, in order."""
    with MediaPipeline(settings) as pipeline:
        pipeline.mark_processing([asset_id])
        for stage in STAGES:
            outcome = getattr(pipeline, stage)([asset_id])[asset_id]
            assert outcome.ok, (stage, outcome.error)
        pipeline.mark_done({asset_id: outcome})


def asset_nodes(reader: GraphReader, asset_id: str) -> set[str]:
    """Asset ids one hop from the asset's concepts, or an empty set when the graph hides the asset."""
    try:
        answer = relationships(reader, asset_id, depth=1)
    except GraphError as exc:
        assert exc.code == "not_found", exc
        return set()
    return {n["id"] for n in answer["nodes"] if n["type"] == "Asset"}


def test_a_deletion_on_one_machine_reaches_the_graph_published_by_another_and_a_reupload_brings_it_back(
    tmp_path: Path,
) -> None:
    api = machine(tmp_path / "api", tmp_path / "shared")
    worker = machine(tmp_path / "worker", tmp_path / "shared")
    (tmp_path / "inbox").mkdir()
    photo = make_image(tmp_path / "inbox" / "photo.png", "PNG", (96, 64))
    keep = make_image(tmp_path / "inbox" / "keep.png", "PNG", (64, 96))
    store = open_object_store(worker)
    victim, other = ingest(api, photo), ingest(api, keep)
    assert victim == asset_id_for_hash(sha256_file(photo))
    for asset_id in (victim, other):
        process(worker, asset_id)
    # The worker wrote the contributions into the shared store, not into its home.
    assert store.head(contrib_key(victim)) is not None
    assert not (worker.graph_dir / "contrib").exists()
    publish_graph(worker, Catalog(worker))
    reader = GraphReader.for_settings(worker)
    assert victim in asset_nodes(reader, victim)

    # Deleted through the API's home: the worker's readers hide it before any publication ...
    assert delete_asset(api, open_object_store(api), Catalog(api), victim)
    assert store.head(tombstone_key(victim)) is not None
    assert not (api.home / "graph" / "tombstones").exists()
    assert asset_nodes(reader, victim) == set()
    # ... and the worker's next publication drops it and consumes the tombstone.
    report = publish_graph(worker, Catalog(worker))
    assert report.tombstones_applied == [victim]
    assert store.head(tombstone_key(victim)) is None and store.head(contrib_key(victim)) is None
    assert reader.query("MATCH (a:Asset) RETURN a.id AS id") == [{"id": other}]

    # The same bytes again: registered, processed and published, the asset is back.
    assert ingest(api, photo) == victim
    process(worker, victim)
    publish_graph(worker, Catalog(worker))
    assert victim in asset_nodes(reader, victim)

    # Deleted and re-uploaded before any publication: storing the file again clears the
    # tombstone, so readers stop hiding it and the publication keeps it.
    assert delete_asset(api, open_object_store(api), Catalog(api), victim)
    assert asset_nodes(reader, victim) == set()
    assert ingest(api, photo) == victim
    process(worker, victim)
    assert tombstoned_ids(store) == frozenset()
    assert victim in asset_nodes(reader, victim)
    report = publish_graph(worker, Catalog(worker))
    assert report.tombstones_applied == []
    assert sorted(r["id"] for r in reader.query("MATCH (a:Asset) RETURN a.id AS id")) == sorted(
        [victim, other]
    )


def test_a_tombstone_rewritten_during_a_publication_survives_it(settings: Settings) -> None:
    store = open_object_store(settings)
    first, second = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    for asset_id in (first, second):
        write_tombstone(store, asset_id)
    seen = read_tombstones(store)
    assert set(seen) == {first, second}
    assert all(t.deleted_at > 0 for t in seen.values())
    write_tombstone(store, second)  # deleted again while the snapshot was being built
    assert remove_reflected_tombstones(store, seen) == [first]
    assert tombstoned_ids(store) == frozenset({second})
    with pytest.raises(ValueError):
        write_tombstone(store, "../../etc/passwd")
