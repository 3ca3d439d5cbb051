"""Graph and analytics snapshots published to a real S3 server process and pulled by a reader on another
"machine" (its own DATAFLUX_HOME, the same bucket), which follows new publications and never sees a
pointer to a missing object."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from graph_support import SegmentSpec, add_asset, picture
from media_factory import make_image
from services import S3Server
from test_graph_shared_state import asset_nodes, ingest, process

from dataflux_pipelines.analytics.facts import collect_facts, publish_facts
from dataflux_pipelines.analytics.reader import AnalyticsReader
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.graph.contrib import graph_contribution
from dataflux_pipelines.graph.store import (
    GraphReader,
    contrib_key,
    relationships,
    tombstone_key,
    tombstoned_ids,
)
from dataflux_pipelines.landing import delete_asset
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.backup import create_backup, restore_backup
from dataflux_pipelines.published import (
    ANALYTICS,
    GRAPH,
    PREFIX,
    file_digest,
    published_versions,
    read_pointer,
)
from dataflux_pipelines.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services


def _machine(root: Path, s3_server: S3Server, bucket: str, *, shared_lance: bool = False) -> Settings:
    """One machine's settings: its own home and Dagster home, the shared bucket as object store
    (and, with `shared_lance`, as the catalog too, like a deployment)."""
    (root / "dagster_home").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    lance = {"DATAFLUX_LANCE_URI": f"s3://{bucket}/lance"} if shared_lance else {}
    return Settings.from_env(
        {
            "DATAFLUX_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DATAFLUX_OBJECT_STORE_URL": f"s3://{bucket}/store",
            "DATAFLUX_PUBLISHED_POLL_S": "0",
            **lance,
            **s3_server.settings_env(),
        }
    )


def _add_picture(settings: Settings, catalog: Catalog, name: str, seed: int) -> str:
    asset_id, _ = add_asset(catalog, name, "image", [SegmentSpec(picture(seed), {"dark": 0.8})])
    graph_contribution(settings, catalog, asset_id)
    return asset_id


def _publish(settings: Settings, catalog: Catalog, **kw: Any) -> tuple[Any, dict[str, Any]]:
    graph = publish_graph(settings, catalog, **kw)
    facts = publish_facts(settings, collect_facts(settings, catalog, []), **kw)
    return graph, facts


def _neighbours(reader: GraphReader, asset_id: str) -> tuple[int, set[str]]:
    answer = relationships(reader, asset_id, depth=2, types=["TAGGED"])
    return answer["snapshot_version"], {n["id"] for n in answer["nodes"] if n["type"] == "Asset"}


def test_a_reader_on_another_machine_answers_from_the_pulled_snapshots_and_follows_new_ones(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    writer = _machine(tmp_path / "writer", s3_server, s3_bucket)
    reader_settings = _machine(tmp_path / "reader", s3_server, s3_bucket)
    catalog = Catalog(writer)
    first = [_add_picture(writer, catalog, f"p{i}.png", i) for i in range(2)]

    graph_reader = GraphReader.for_settings(reader_settings)
    stats_reader = AnalyticsReader(reader_settings)
    assert not graph_reader.available()
    assert stats_reader.stats()["available"] is False

    graph, facts = _publish(writer, catalog)
    store = open_object_store(writer)
    pointer = read_pointer(store, GRAPH)
    assert pointer is not None and pointer.version == graph.snapshot.version == graph.published.version
    assert pointer.key == f"{PREFIX}/graph/v{pointer.version:06d}.kuzu"
    assert (pointer.sha256, pointer.size) == file_digest(graph.snapshot.path)
    assert read_pointer(store, ANALYTICS).version == facts["version"]

    # A reader process that started before the publication, and a fresh one, both pull it.
    # The slow one is on a third machine: readers on one machine share their cache's `current`.
    slow_settings = _machine(tmp_path / "slow", s3_server, s3_bucket)
    slow = GraphReader.for_settings(dataclasses.replace(slow_settings, published_poll_s=3600.0))
    for reader in (graph_reader, slow):
        assert reader.available()
        assert _neighbours(reader, first[0]) == (pointer.version, set(first))
    stats = stats_reader.stats()
    assert stats["available"] and stats["totals"]["assets"] == 2 and stats["version"] == facts["version"]
    cached = reader_settings.home / "cache" / "graph" / "snapshots" / f"v{pointer.version:06d}.kuzu"
    assert cached.is_file() and file_digest(cached) == (pointer.sha256, pointer.size)
    assert not reader_settings.graph_dir.exists()  # nothing of the writer's home is on this machine

    third = _add_picture(writer, catalog, "p2.png", 2)
    graph2, facts2 = _publish(writer, catalog)
    assert graph2.published.version == pointer.version + 1
    assert _neighbours(graph_reader, third) == (graph2.published.version, {*first, third})
    stats = stats_reader.stats()
    assert stats["totals"]["assets"] == 3 and stats["version"] == facts2["version"]
    # Checked at most every poll interval: the slow reader still answers from the version it has.
    assert _neighbours(slow, first[0]) == (pointer.version, set(first))

    # Old versions are collected in the bucket: the newest `keep`, never the pointer's.
    for _ in range(2):
        _publish(writer, catalog, keep=2, grace_s=0.0)
    for kind in (GRAPH, ANALYTICS):
        live = read_pointer(store, kind).version
        assert sorted(published_versions(store, kind)) == [live - 1, live], kind
    assert _neighbours(graph_reader, third)[0] == read_pointer(store, GRAPH).version


def test_a_reader_never_sees_a_pointer_to_a_missing_or_partial_object(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    writer = _machine(tmp_path / "writer", s3_server, s3_bucket)
    reader_settings = _machine(tmp_path / "reader", s3_server, s3_bucket)
    catalog = Catalog(writer)
    for i in range(3):
        _add_picture(writer, catalog, f"p{i}.png", i)
    _publish(writer, catalog)
    done = threading.Event()
    seen: dict[str, set[int]] = {GRAPH: set(), ANALYTICS: set()}
    problems: list[str] = []

    def watch() -> None:
        store = open_object_store(reader_settings)  # its own client, like another process
        for _ in range(100_000):  # bounded; ends when the writer is done
            try:
                for kind in (GRAPH, ANALYTICS):
                    pointer = read_pointer(store, kind)
                    seen[kind].add(pointer.version)
                    named = [(pointer.key, pointer.size)] if not pointer.is_folder else []
                    named += [(pointer.key + f.name, f.size) for f in pointer.files]
                    for key, size in named:
                        head = store.head(key)
                        if head is None or head.size != size:
                            problems.append(f"v{pointer.version}: {key} is {head}")
            except Exception as exc:  # reported below: a pointer that cannot be read is a failure too
                problems.append(repr(exc))
            if done.is_set():
                return

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        # keep is large enough that nothing is collected: a missing object could only mean
        # the pointer had been written before the snapshot it names.
        for _ in range(4):
            _publish(writer, catalog, keep=10)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not problems, problems[:5]
    assert len(seen[GRAPH]) >= 2 and len(seen[ANALYTICS]) >= 2, seen  # it really watched publications


def test_a_backup_reads_the_published_snapshots_and_a_restore_publishes_them_for_readers(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    writer = _machine(tmp_path / "writer", s3_server, s3_bucket)
    catalog = Catalog(writer)
    ids = [_add_picture(writer, catalog, f"p{i}.png", i) for i in range(2)]
    graph, _facts = _publish(writer, catalog)
    # The backup runs on a machine without the writer's home: only the bucket has the snapshots.
    operator = dataclasses.replace(writer, home=tmp_path / "operator" / "home")
    manifest = create_backup(operator, tmp_path / "backup")
    assert manifest["graph"]["version"] == graph.published.version
    backed_up = tmp_path / "backup" / "graph" / "snapshots" / manifest["graph"]["snapshot"]
    assert file_digest(backed_up) == (graph.published.sha256, graph.published.size)
    assert manifest["analytics"]["published"]["rows"]["assets"] == 2
    assert not any(o["key"].startswith(f"{PREFIX}/") for o in _objects_manifest(tmp_path / "backup"))

    target = _machine(tmp_path / "restored", s3_server, s3_server.make_bucket("restored"))
    report = restore_backup(target, tmp_path / "backup")
    assert len(report["republished"]) == 2
    reader_settings = dataclasses.replace(target, home=tmp_path / "reader" / "home")
    reader = GraphReader.for_settings(reader_settings)
    assert _neighbours(reader, ids[0]) == (graph.published.version, set(ids))
    assert AnalyticsReader(reader_settings).stats()["totals"]["assets"] == 2


def _objects_manifest(backup: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in (backup / "objects.jsonl").read_text().splitlines()]


def test_deletions_and_contributions_reach_the_graph_writer_on_another_machine_through_the_bucket(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    api, worker, writer = (
        _machine(tmp_path / name, s3_server, s3_bucket, shared_lance=True)
        for name in ("api", "worker", "writer")
    )
    store = open_object_store(writer)
    # Contributions computed on the worker are the only source of TAGGED edges for the writer.
    tagged = _add_picture(worker, Catalog(worker), "tagged.png", 3)
    (tmp_path / "inbox").mkdir()
    photo = make_image(tmp_path / "inbox" / "photo.png", "PNG", (96, 64))
    victim = ingest(api, photo)
    process(worker, victim)
    assert store.head(contrib_key(tagged)) is not None and store.head(contrib_key(victim)) is not None
    report = publish_graph(writer, Catalog(writer))
    reader = GraphReader.for_settings(api)  # the API pulls the writer's snapshot into its own cache
    concepts = relationships(reader, tagged, depth=1, types=["TAGGED"])["nodes"]
    assert {n["id"] for n in concepts if n["type"] == "Concept"} == {"dark"}
    assert victim in asset_nodes(reader, victim)
    for machine in (api, worker, writer):
        assert (
            not (machine.graph_dir / "contrib").exists() and not (machine.graph_dir / "tombstones").exists()
        )

    # Deleted by the API: hidden at once, dropped by the writer's next publication.
    assert delete_asset(api, open_object_store(api), Catalog(api), victim)
    assert asset_nodes(reader, victim) == set()
    assert asset_nodes(GraphReader.for_settings(worker), victim) == set()
    report = publish_graph(writer, Catalog(writer))
    assert report.tombstones_applied == [victim]
    assert store.head(tombstone_key(victim)) is None and store.head(contrib_key(victim)) is None
    assert {r["id"] for r in reader.query("MATCH (a:Asset) RETURN a.id AS id")} == {tagged}

    # The same bytes uploaded again and processed on the worker: back in the writer's graph.
    assert ingest(api, photo) == victim
    process(worker, victim)
    assert tombstoned_ids(store) == frozenset()
    publish_graph(writer, Catalog(writer))
    assert victim in asset_nodes(reader, victim)
    assert {r["id"] for r in reader.query("MATCH (a:Asset) RETURN a.id AS id")} == {tagged, victim}
