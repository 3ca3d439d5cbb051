"""Dagster asset checks run on what the pipeline really stored: one evaluation per file partition,
the shared assets' checks with their refresh, and failures that name the file when a store is damaged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from api_support import private_homes
from media_factory import make_image, make_markdown

from dataflux_api.cli.pipeline import run_process
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.checks import FILE_CHECKS, file_check_evaluations, files_processed_since
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, keys_by_asset


def _evaluations(instance: dg.DagsterInstance) -> list[Any]:
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=1000
    )
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("checks")
    with pytest.MonkeyPatch.context() as mp:
        settings = private_homes(mp, root)
        inbox = root / "inbox"
        inbox.mkdir()
        make_markdown(inbox / "notes.md")
        make_image(inbox / "photo.png", "PNG", (96, 64))
        list(ingest_paths(open_object_store(settings), Catalog(settings), [inbox]))
        report = run_process(settings, quiet=True)
        assert (report.completed, report.failed) == (2, 0)
        with dg.DagsterInstance.get() as instance:
            keys = keys_by_asset(instance.get_dynamic_partitions(MEDIA_PARTITIONS))
            yield {
                "settings": settings,
                "instance": instance,
                "keys": keys,
                "evaluations": _evaluations(instance),
            }


def test_every_file_partition_gets_every_file_check_and_passes(processed: dict[str, Any]) -> None:
    by_partition: dict[str, dict[str, bool]] = {}
    for e in processed["evaluations"]:
        if e.partition:
            by_partition.setdefault(e.partition, {})[e.check_name] = e.passed
    assert set(by_partition) == set(processed["keys"].values())
    for partition, checks in by_partition.items():
        assert checks == dict.fromkeys(FILE_CHECKS, True), partition
    # Each result points at the materialization it verified: Dagster counts it as that partition's.
    instance = processed["instance"]
    for key in (dg.AssetCheckKey(dg.AssetKey(stage), name) for name, (stage, _) in FILE_CHECKS.items()):
        infos = instance.event_log_storage.get_asset_check_partition_info([key])
        assert {i.partition_key for i in infos} == set(processed["keys"].values()), key
        assert all(i.is_current for i in infos), (key, infos)


def test_the_shared_assets_checks_ran_with_their_refresh_and_pass(processed: dict[str, Any]) -> None:
    shared = {
        (e.asset_key.path[-1], e.check_name): e.passed for e in processed["evaluations"] if not e.partition
    }
    assert shared[("vector_indexes", "index_recall")] is True
    assert shared[("media_graph", "graph_matches_catalog")] is True
    assert shared[("analytics_facts", "facts_complete")] is True


def test_the_segments_materialization_carries_counts_timings_and_a_thumbnail(
    processed: dict[str, Any],
) -> None:
    instance = processed["instance"]
    catalog = Catalog(processed["settings"])
    photo = next(a for a in catalog.find_assets() if a["filename"] == "photo.png")
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("segments"), asset_partitions=[processed["keys"][photo["id"]]]
        ),
        limit=1,
    ).records[0]
    metadata = record.asset_materialization.metadata
    assert metadata["seconds"].value >= 0
    assert metadata["preview"].value.startswith("![photo.png](data:image/jpeg;base64,")


def test_damaged_stores_fail_the_checks_and_name_the_file(processed: dict[str, Any]) -> None:
    settings = processed["settings"]
    catalog, store = Catalog(settings), open_object_store(settings)
    photo = next(a for a in catalog.find_assets() if a["filename"] == "photo.png")
    segments = catalog.segments_for(photo["id"])
    thumbnail = photo["thumbnail_path"]
    saved = store.get_bytes(thumbnail)
    store.delete(thumbnail)
    catalog.segments.update(where=f"asset_id = '{photo['id']}'", values={"text_model": "minilm@old"})
    try:
        results = {
            e.check_name: e
            for e in file_check_evaluations(
                catalog,
                store,
                ModelRegistry(settings),
                [photo["id"]],
                processed["keys"],
                set(FILE_CHECKS),
            )
        }
    finally:
        store.put_bytes(thumbnail, saved)
        catalog.replace_segments(photo["id"], segments)
    assert not results["keyframes_and_thumbnails_stored"].passed
    assert results["keyframes_and_thumbnails_stored"].description.startswith("photo.png: ")
    assert thumbnail in results["keyframes_and_thumbnails_stored"].metadata["problems"].value
    assert not results["embedded_with_current_models"].passed
    assert "minilm@old" in results["embedded_with_current_models"].description
    assert results["segments_well_formed"].passed
    assert results["keyframes_and_thumbnails_stored"].partition == processed["keys"][photo["id"]]


def test_the_lag_check_job_runs_and_names_files_processed_after_a_refresh(processed: dict[str, Any]) -> None:
    instance = processed["instance"]
    result = defs.resolve_job_def("check_shared_lag").execute_in_process(instance=instance)
    assert result.success
    lag = [e for e in result.get_asset_check_evaluations() if e.check_name == "caught_up_with_files"]
    assert len(lag) == 4 and all(e.passed for e in lag)
    # A file embedded after the last graph refresh is what the graph lags.
    late = next(iter(processed["keys"].values()))
    instance.report_runless_asset_event(dg.AssetMaterialization("segment_embeddings", partition=late))
    assert files_processed_since(instance, dg.AssetKey("media_graph")) == [late]


def test_checks_point_at_each_partitions_latest_materialization_when_one_was_materialized_again(
    processed: dict[str, Any],
) -> None:
    # Runs last in this module: it adds materializations, after which these partitions' checks are stale.
    settings, instance, keys = processed["settings"], processed["instance"], processed["keys"]
    catalog, store = Catalog(settings), open_object_store(settings)
    first, second = list(keys)
    for _ in range(2):  # two newer records of one partition fill a page sized for both partitions
        instance.report_runless_asset_event(dg.AssetMaterialization("segments", partition=keys[first]))
    latest = {
        a: instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("segments"), asset_partitions=[keys[a]]), limit=1
        ).records[0]
        for a in (first, second)
    }
    evaluations = [
        e
        for e in file_check_evaluations(
            catalog, store, ModelRegistry(settings), [first, second], keys, set(FILE_CHECKS), instance
        )
        if e.asset_key == dg.AssetKey("segments")
    ]
    assert len(evaluations) == 4
    for e in evaluations:
        asset_id = first if e.partition == keys[first] else second
        assert e.target_materialization_data.storage_id == latest[asset_id].storage_id, e.check_name
        assert e.target_materialization_data.run_id == latest[asset_id].run_id
