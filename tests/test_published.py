"""Published snapshots are verified before use, pointers are checked before they name a path, and a
local (`file://`) installation publishes nothing twice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import kuzu
import pytest
from graph_support import SegmentSpec, add_asset, picture

from dataflux_pipelines.analytics.facts import collect_facts, publish_facts
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.graph.schema import DDL
from dataflux_pipelines.graph.store import GraphError, GraphReader, publish_snapshot
from dataflux_pipelines.objectstore import LocalObjectStore
from dataflux_pipelines.published import (
    GRAPH,
    PublishedError,
    pointer_key,
    publish_file,
    read_pointer,
)
from dataflux_pipelines.settings import Settings


def _assets(n: int):
    def mutate(conn: kuzu.Connection) -> None:
        for ddl in DDL:
            conn.execute(ddl)
        conn.execute("UNWIND range(1, $n) AS i CREATE (:Asset {id: 'a' + string(i)})", {"n": n})

    return mutate


def _count(reader: GraphReader) -> int:
    return reader.query("MATCH (a:Asset) RETURN count(a) AS n")[0]["n"]


def test_a_corrupted_snapshot_is_refused_and_the_cached_one_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalObjectStore(tmp_path / "bucket")
    writer_dir = tmp_path / "writer" / "graph"
    for n in (3, 5):
        snap = publish_snapshot(writer_dir, _assets(n))
        publish_file(store, GRAPH, snap.version, snap.path, suffix=".kuzu")
        if n == 3:
            reader = GraphReader(tmp_path / "reader" / "cache", store=store, poll_s=0.0)
            assert _count(reader) == 3 and reader.snapshot.version == 1
    pointer = read_pointer(store, GRAPH)
    damaged = bytearray(store.get_bytes(pointer.key))
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one flipped byte
    store.put_bytes(pointer.key, bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="dataflux_pipelines.published"):
        assert _count(reader) == 3 and reader.snapshot.version == 1
    assert "published_checksum_mismatch" in (reader.follower.last_error or "")
    assert "still serving" in caplog.text
    assert sorted(p.name for p in (tmp_path / "reader" / "cache" / "snapshots").iterdir()) == ["v000001.kuzu"]

    fresh = GraphReader(tmp_path / "other" / "cache", store=store, poll_s=0.0)
    assert not fresh.available()
    with pytest.raises(GraphError, match="published_checksum_mismatch") as raised:
        fresh.query("MATCH (a:Asset) RETURN count(a)")
    assert raised.value.code == "graph_unavailable"


def test_a_pointer_that_names_a_path_outside_its_version_is_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "bucket")
    pointer = {
        "version": 2,
        "key": "published/analytics/v000002/",
        "sha256": "0" * 64,
        "size": 1,
        "published_at": "2026-01-01T00:00:00+00:00",
        "files": [{"name": "../../../home/x.parquet", "sha256": "0" * 64, "size": 1}],
    }
    store.put_bytes(pointer_key("analytics"), json.dumps(pointer).encode())
    with pytest.raises(PublishedError, match="not a plain relative path") as raised:
        read_pointer(store, "analytics")
    assert raised.value.code == "published_pointer_invalid"
    store.put_bytes(
        pointer_key(GRAPH), json.dumps({**pointer, "key": "published/graph/v000009.kuzu"}).encode()
    )
    with pytest.raises(PublishedError, match="not under published/graph/ for version 2"):
        read_pointer(store, GRAPH)


def test_a_local_installation_publishes_nothing_into_its_object_store(settings: Settings) -> None:
    catalog = Catalog(settings)
    add_asset(catalog, "p.png", "image", [SegmentSpec(picture(1), {"dark": 0.8})])
    report = publish_graph(settings, catalog)
    manifest = publish_facts(settings, collect_facts(settings, catalog, []))
    assert report.published is None and "version" not in manifest
    store_root = Path(settings.object_store_url.removeprefix("file://"))
    assert not (store_root / "published").exists()
    assert not (settings.home / "cache").exists()
    assert GraphReader.for_settings(settings).graph_dir == settings.graph_dir
