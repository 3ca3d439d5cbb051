"""A model change makes exactly the affected partitions stale; `process --stale` re-embeds only those."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from media_factory import make_image, make_markdown
from tiny_models import build_tiny_clip

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.embeddings.stage import stale_assets
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.orchestration.partitions import asset_id_of
from dataflux_pipelines.orchestration.sensors import stale_embeddings_sensor
from dataflux_pipelines.settings import Settings


def _embedding_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [
        r
        for r in instance.get_runs()
        if r.asset_selection == {dg.AssetKey("segment_embeddings"), dg.AssetKey("graph_contributions")}
    ]


def test_a_new_vision_model_makes_only_visual_files_stale_and_process_stale_re_embeds_them(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = [
        make_image(src / "photo.png", "PNG", (64, 48)),
        make_markdown(src / "notes.md", sections=1, words_per_section=40),
    ]
    list(ingest_paths(open_object_store(settings), Catalog(settings), files))
    assert process_landing(settings, instance, defs).completed == 2
    catalog = Catalog(settings)
    ids = {r["filename"]: r["id"] for r in catalog.find_assets()}
    assert stale_assets(catalog.db, ModelRegistry(settings)) == []

    monkeypatch.setenv("DATAFLUX_CLIP_MODEL", str(build_tiny_clip(tmp_path / "tiny-clip")))
    changed = Settings.from_env()
    assert stale_assets(Catalog(changed).db, ModelRegistry(changed)) == [ids["photo.png"]]

    tick = stale_embeddings_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
    assert [asset_id_of(r.partition_key) for r in tick.run_requests] == [ids["photo.png"]]
    assert set(tick.run_requests[0].asset_selection) == {
        dg.AssetKey("segment_embeddings"),
        dg.AssetKey("graph_contributions"),
    }

    report = process_landing(changed, instance, defs, stale=True)
    assert report.files == 1 and report.completed == 1
    assert [asset_id_of(r.tags["dagster/partition"]) for r in _embedding_runs(instance)] == [ids["photo.png"]]
    assert stale_assets(Catalog(changed).db, ModelRegistry(changed)) == []
    models = Catalog(changed).get_asset(ids["photo.png"])["models"]
    assert "tiny-clip" in str(models)
