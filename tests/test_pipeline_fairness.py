"""Bounded work per file: a heavy file is finished after the others, and a file past its time budget
fails alone with `time_budget_exceeded`; the run's profile says where the time went."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from media_factory import make_image, make_markdown, make_video

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.assets import PROFILE_TAG
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.orchestration.partitions import asset_id_of
from dataflux_pipelines.pipeline import cost_batches
from dataflux_pipelines.settings import Settings


def _ingest(settings: Settings, folder: Path) -> None:
    """Land a folder the way `dataflux ingest` does."""
    list(ingest_paths(open_object_store(settings), Catalog(settings), [folder]))


def _materialized_at(instance: dg.DagsterInstance, stage: str) -> dict[str, int]:
    """Asset id -> storage id (the event log's order) of its latest materialization of `stage`."""
    records = instance.fetch_materializations(dg.AssetKey(stage), limit=1000).records
    out: dict[str, int] = {}
    for record in records:
        partition = record.asset_materialization.partition if record.asset_materialization else None
        if partition:
            out.setdefault(asset_id_of(partition), record.storage_id)
    return out


def test_heavy_files_are_batched_alone_after_the_cheap_ones() -> None:
    rows = [{"id": f"a{i}", "media_type": "document", "file_size": 2_000} for i in range(5)]
    rows.append({"id": "big", "media_type": "document", "file_size": 5_000_000})
    rows.append({"id": "long", "media_type": "video", "duration": 3600.0, "width": 1920, "height": 1080})
    batches = cost_batches(rows)
    assert batches[0] == [f"a{i}" for i in range(5)]
    assert batches[1:] == [["big"], ["long"]]  # each alone, cheapest first


def test_a_huge_document_does_not_hold_back_the_other_files_of_its_run(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    landing = tmp_path / "inbox"
    landing.mkdir()
    for i in range(3):
        make_markdown(landing / f"note_{i}.md", sections=1, words_per_section=80 + 20 * i)
    make_markdown(landing / "huge.md", sections=30, words_per_section=800)
    _ingest(settings, landing)
    report = process_landing(settings, instance, defs)
    assert report.runs == 1 and report.completed == 4 and report.failed == 0
    rows = {r["filename"]: r for r in Catalog(settings).find_assets()}
    huge = rows["huge.md"]["id"]
    finished = _materialized_at(instance, "graph_contributions")
    huge_started = _materialized_at(instance, "segments")[huge]
    for i in range(3):
        # Every small file went through its last stage before the huge one had even been segmented.
        assert finished[rows[f"note_{i}.md"]["id"]] < huge_started
    assert rows["huge.md"]["segment_count"] > 10 * rows["note_0.md"]["segment_count"]
    # Where the time went, per media type and phase, in the report and on the Dagster run.
    assert report.profile["document"]["files"] == 4
    for phase in ("analyse", "embed_model", "write_objects_and_rows"):
        assert report.profile["document"][phase] > 0
    assert {"startup_s", "planning_s", "first_file_touched_s", "runs_s"} <= set(report.timings)
    # Dagster's share is the runs' time outside the media op (its wall time, stages overlapping in it).
    op_total = report.profile["run"]["op_total"]
    assert 0 < op_total <= report.timings["runs_s"]
    assert report.timings["orchestration_s"] == pytest.approx(report.timings["runs_s"] - op_total, abs=0.01)
    run = instance.get_run_records(filters=dg.RunsFilter(job_name="process_media"))[0].dagster_run
    assert json.loads(run.tags[PROFILE_TAG])["document"]["files"] == 4


def test_a_file_past_its_time_budget_fails_alone_with_the_reason(
    dataflux_env: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATAFLUX_FILE_TIME_BUDGET_S", "15")
    settings = Settings.from_env()  # the run's resources read the same environment
    landing = tmp_path / "inbox"
    landing.mkdir()
    # Three minutes of frames: shot detection over 4,500 frames takes minutes
    # (and the small pictures a fraction of the budget, even on a busy machine).
    make_video(landing / "long.mp4", seconds=180, fps=25, size=(96, 64), scenes=3)
    make_image(landing / "a.png", "PNG", (40, 30))
    make_image(landing / "b.png", "PNG", (41, 30))
    _ingest(settings, landing)
    report = process_landing(settings, instance, defs)
    catalog = Catalog(settings)
    rows = {r["filename"]: r for r in catalog.find_assets()}
    assert rows["a.png"]["status"] == rows["b.png"]["status"] == "completed"
    long = rows["long.mp4"]
    assert (long["status"], long["reason_code"]) == ("failed", "time_budget_exceeded")
    assert "DATAFLUX_FILE_TIME_BUDGET_S" in long["reason_message"]
    assert catalog.segments_for(long["id"]) == []  # nothing half-written
    store = open_object_store(settings)
    assert not [k.key for k in store.list(layout.asset_prefix(long["id"])) if "/keyframes/" in k.key]
    assert report.completed == 2 and report.failed == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_finished_files_are_handed_on_while_the_next_ones_still_decode(
    settings: Settings, workers: int
) -> None:
    """`MediaPipeline.each` with `ready`: the main thread gets the files finished so far while the
    rest still run (transcripts and OCR overlap decoding), each file once, and the outcomes keep
    the files' order. The last file decodes only once the first has been handed on: without the
    overlap it would wait out its timeout and the test fails."""
    import dataclasses
    import threading

    from dataflux_pipelines.pipeline import MediaPipeline, Outcome

    pipeline = MediaPipeline(dataclasses.replace(settings, decode_workers=workers))
    ids = ["first", "second", "third"]
    handed: list[list[str]] = []
    first_handed = threading.Event()
    waited: dict[str, bool] = {}

    def fn(asset_id: str) -> Outcome:
        if asset_id == "third":
            waited[asset_id] = first_handed.wait(timeout=20)
        return Outcome(asset_id, metadata={"n": ids.index(asset_id)})

    def ready(batch: list[str]) -> None:
        handed.append(batch)
        if "first" in batch:
            first_handed.set()

    out = pipeline.each(ids, fn, ready=ready)
    pipeline.close()
    assert list(out) == ids and [o.metadata["n"] for o in out.values()] == [0, 1, 2]
    assert waited == {"third": True}
    flat = [a for batch in handed for a in batch]
    assert len(flat) == len(set(flat)) and "third" not in flat  # the last one is the caller's


def test_the_model_registry_is_built_once_on_the_preload_thread(settings: Settings) -> None:
    """The op hands the pipeline a factory: building the registry (the torch import) happens on the
    model preload thread beside the decoding, once, even when the main thread asks for it meanwhile."""
    import threading

    from dataflux_pipelines.pipeline import MediaPipeline

    built_on: list[str] = []
    release = threading.Event()
    loaded: list[list[str]] = []

    class Registry:
        def __init__(self) -> None:
            self.load_seconds: dict[str, float] = {}

        def preload(self, roles: list[str]) -> threading.Thread:
            loaded.append(list(roles))
            thread = threading.Thread(target=lambda: None)
            thread.start()
            return thread

    def factory() -> Registry:
        built_on.append(threading.current_thread().name)
        release.wait(timeout=20)
        return Registry()

    pipeline = MediaPipeline(settings, registry_factory=factory)  # type: ignore[arg-type]
    pipeline.preload_models(["text"])
    asked = threading.Thread(target=lambda: pipeline.registry)  # another user, while it is being built
    asked.start()
    release.set()
    asked.join(timeout=20)
    pipeline._await_preload()
    assert built_on == ["dataflux-model-preload"]
    assert loaded == [["text"]] and isinstance(pipeline.registry, Registry)
    pipeline.close()
