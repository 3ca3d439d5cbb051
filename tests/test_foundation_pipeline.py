"""Foundation: definitions, the landing sensor, media_file on every type, failures as values, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from media_factory import (
    make_audio_file,
    make_elf_named_mp4,
    make_html,
    make_image,
    make_markdown,
    make_pdf,
    make_text,
    make_truncated_mp4,
    make_video,
    make_wav,
)

from dataflux_api.cli.main import cli
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash, sha256_file
from dataflux_pipelines.landing import ingest_paths, plan_landing, sidecar_key
from dataflux_pipelines.objectstore import LocalObjectStore, open_object_store
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.orchestration.partitions import (
    RANGE_END,
    RANGE_START,
    asset_id_of,
    contiguous_ranges,
    media_files,
)
from dataflux_pipelines.orchestration.sensors import landing_sensor
from dataflux_pipelines.settings import Settings


def _landing(settings: Settings) -> Path:
    store = open_object_store(settings)
    assert isinstance(store, LocalObjectStore)
    folder = store.root / "landing"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tick(instance: dg.DagsterInstance) -> dg.SensorResult:
    result = landing_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_definitions_load_with_the_per_file_assets_the_job_and_the_sensor() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"media_file", "segments", "segment_embeddings", "graph_contributions"} <= keys
    job = defs.resolve_job_def("process_media")
    assert job.partitions_def == media_files
    assert defs.resolve_sensor_def("landing_sensor").job_name == "process_media"
    spec_deps = {
        k.to_user_string(): {d.to_user_string() for d in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
        if k.to_user_string() in {"segments", "segment_embeddings"}
    }
    assert spec_deps == {"segments": {"media_file"}, "segment_embeddings": {"segments"}}


def test_a_sensor_tick_registers_new_files_once_and_honours_the_sidecar(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    landing = _landing(settings)
    make_image(landing / "a.png", "PNG", (64, 48))
    make_wav(landing / "b.wav")
    (landing / "b.wav.dataflux.json").write_text(
        json.dumps({"filename": "interview.wav", "context": "podcast take 2", "priority": 2})
    )
    result = _tick_settled(instance)
    assert len(result.run_requests) == 2  # two priorities: two runs
    urgent = result.run_requests[0]
    assert urgent.tags["dagster/priority"] == "8" and urgent.tags["dataflux/priority"] == "2"
    assert result.cursor and json.loads(result.cursor)["pending"] == 2
    catalog = Catalog(settings)
    rows = {r["filename"]: r for r in catalog.find_assets()}
    assert rows["interview.wav"]["context"] == "podcast take 2"
    assert rows["interview.wav"]["status"] == "queued"
    keys = instance.get_dynamic_partitions("media_files")
    # The Dagster UI's partition filter finds a file by its name; the id after `~` is its identity.
    assert {asset_id_of(k) for k in keys} == {r["id"] for r in rows.values()}
    assert sorted(k.split("~")[0] for k in keys) == ["a.png", "interview.wav"]
    again = _tick_settled(instance)
    assert not again.run_requests and again.skip_reason is not None


def test_a_tick_reads_every_files_partition_key_only_when_its_plan_needs_them(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = _landing(settings)
    for i in range(3):
        make_image(landing / f"old{i}.png", "PNG", (40 + i, 30))
    assert len(_tick_settled(instance).run_requests) == 1
    # As a processed library looks: every file completed, landing empty.
    catalog = Catalog(settings)
    catalog.update_assets(
        {r["id"]: {"status": "completed", "landing_key": None} for r in catalog.find_assets()}
    )
    for path in list(landing.rglob("*")):
        path.unlink()
    reads: list[int] = []
    original = instance.get_dynamic_partitions

    def counted(name: str) -> list[str]:
        keys = list(original(name))
        reads.append(len(keys))
        return keys

    monkeypatch.setattr(instance, "get_dynamic_partitions", counted)
    idle = _tick_settled(instance)
    assert not idle.run_requests and idle.skip_reason is not None
    assert reads == []  # nothing queued, running or landed: the keys (one per file) are not read
    make_image(landing / "new.png", "PNG", (77, 55))
    result = _tick_settled(instance)
    assert reads == [3]  # read once, for the new file's plan
    [request] = result.run_requests
    [added] = result.dynamic_partitions_requests[0].partition_keys
    assert request.partition_key == added


def _tick_settled(instance: dg.DagsterInstance) -> dg.SensorResult:
    # Files written this instant may still be being copied: the sensor waits for them to settle.
    import os
    import time

    settings = Settings.from_env()
    landing = open_object_store(settings).root / "landing"  # type: ignore[union-attr]
    old = time.time() - 60
    for path in landing.rglob("*"):
        os.utime(path, (old, old))
    return _tick(instance)


def test_many_files_of_one_priority_become_one_ranged_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    landing = _landing(settings)
    for i in range(5):
        make_image(landing / f"img{i}.png", "PNG", (32 + i, 24))
    result = _tick_settled(instance)
    assert len(result.run_requests) == 1
    tags = result.run_requests[0].tags
    order = instance.get_dynamic_partitions("media_files")
    assert (tags[RANGE_START], tags[RANGE_END]) == (order[0], order[-1])
    assert contiguous_ranges(order[1:3], order) == [(order[1], order[2])]
    assert contiguous_ranges([order[0], order[2]], order) == [(order[0], order[0]), (order[2], order[2])]


def test_the_same_bytes_under_two_names_are_one_asset(settings: Settings, tmp_path: Path) -> None:
    src = make_image(tmp_path / "photo.jpg", "JPEG", (64, 48))
    copy = tmp_path / "copy of photo.jpg"
    shutil.copyfile(src, copy)
    store, catalog = open_object_store(settings), Catalog(settings)
    receipts = [r for _, r in ingest_paths(store, catalog, [src, copy])]
    assert receipts[0].asset_id == receipts[1].asset_id == asset_id_for_hash(sha256_file(src))
    assert receipts[0].duplicate_of is None and receipts[1].duplicate_of == receipts[0].asset_id
    assert len(catalog.find_assets()) == 1
    # A plain copy into landing of bytes already known is dropped by the next evaluation.
    shutil.copyfile(src, _landing(settings) / "third.jpg")
    plan = plan_landing(store, catalog, set(), settle_seconds=0)
    assert plan.duplicates == [("landing/third.jpg", receipts[0].asset_id)]


def test_one_evaluation_registers_all_new_plain_copies_in_one_catalog_commit(
    settings: Settings, tmp_path: Path
) -> None:
    landing = _landing(settings)
    for i in range(12):
        make_image(landing / f"img{i}.png", "PNG", (20 + i, 24))
    shutil.copyfile(landing / "img0.png", landing / "img0 again.png")
    store, catalog = open_object_store(settings), Catalog(settings)
    before = catalog.assets.version
    plan = plan_landing(store, catalog, set(), settle_seconds=0)
    assert catalog.assets.version == before + 1  # one merge for the whole batch, not one per file
    assert len(plan.pending) == 12 and len({p.asset_id for p in plan.pending}) == 12
    # Two names for the same bytes in one batch: one asset, the other name a duplicate of it.
    first = asset_id_for_hash(sha256_file(landing / "img0.png"))
    assert [a for _, a in plan.duplicates] == [first] and first in {p.asset_id for p in plan.pending}
    rows = {r["id"]: r for r in catalog.find_assets()}
    assert len(rows) == 12 and all(r["status"] == "queued" and r["landing_key"] for r in rows.values())
    # The next evaluation finds them registered: no write at all.
    again = plan_landing(store, catalog, set(), settle_seconds=0)
    assert catalog.assets.version == before + 1
    assert sorted(p.asset_id for p in again.pending) == sorted(p.asset_id for p in plan.pending)


def _pictures(folder: Path, count: int) -> Path:
    """A folder of `count` small distinct PNGs, img0.png ... (each a different size, so different bytes)."""
    folder.mkdir()
    for i in range(count):
        make_image(folder / f"img{i}.png", "PNG", (20 + i, 24))
    return folder


def test_ingesting_a_folder_writes_its_catalog_rows_in_one_commit_when_the_iteration_ends(
    settings: Settings, tmp_path: Path
) -> None:
    from dataflux_api.service import DataFlux

    folder = _pictures(tmp_path / "in", 10)
    shutil.copyfile(folder / "img3.png", folder / "img3 copy.png")
    (folder / "empty.png").write_bytes(b"")
    service = DataFlux(settings)
    catalog = Catalog(settings)
    before = catalog.assets.version
    results = list(service.ingest_files([folder]))
    assert catalog.assets.version == before + 1
    assert [r["refused"] for r in results].count("empty_file") == 1
    assert sum(1 for r in results if r.get("duplicate_of")) == 1
    rows = catalog.find_assets()
    assert len(rows) == 10 and all(r["status"] == "queued" and r["landing_key"] for r in rows)


def test_ingest_reads_existing_rows_once_per_chunk_and_reports_every_file_in_order(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataflux_api.service import DataFlux
    from dataflux_pipelines import landing

    folder = _pictures(tmp_path / "in", 8)
    shutil.copyfile(folder / "img2.png", folder / "img6 copy.png")  # same bytes, a later chunk
    shutil.copyfile(folder / "img3.png", folder / "img3 copy.png")  # same bytes, the same chunk
    (folder / "empty.png").write_bytes(b"")
    service = DataFlux(settings)
    (before,) = list(service.ingest_files([folder / "img5.png"]))  # already in the catalog
    monkeypatch.setattr(landing, "LOOKUP_FILES", 3)
    reads: list[int] = []
    get_assets = Catalog.get_assets

    def counted(self, ids):
        reads.append(len(ids))
        return get_assets(self, ids)

    def refused(self, asset_id):
        raise AssertionError("a file's row was read on its own")

    monkeypatch.setattr(Catalog, "get_assets", counted)
    monkeypatch.setattr(Catalog, "get_asset", refused)
    results = list(service.ingest_files([folder]))
    assert [Path(r["path"]).name for r in results] == sorted(p.name for p in folder.iterdir())
    by_name = {Path(r["path"]).name: r for r in results}
    assert by_name["empty.png"]["refused"] == "empty_file"
    assert by_name["img5.png"]["duplicate_of"] == before["asset_id"]
    # "img3 copy.png" sorts (and lands) before "img3.png", which then finds it.
    assert by_name["img3.png"]["duplicate_of"] == by_name["img3 copy.png"]["asset_id"]
    assert by_name["img6 copy.png"]["duplicate_of"] == by_name["img2.png"]["asset_id"]
    landed = [r for r in results if r["refused"] is None and r["duplicate_of"] is None]
    assert len(landed) == 7 and all(r["status"] == "queued" for r in landed)
    # 10 files to land, 3 at a time, one read per chunk (the second's two img3 files are one id).
    assert reads == [3, 2, 3, 1]
    assert len(Catalog(settings).find_assets()) == 8


def test_a_file_that_cannot_be_read_stops_ingest_after_the_files_before_it_have_landed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataflux_api.service import DataFlux

    folder = _pictures(tmp_path / "in", 5)
    unreadable = folder / "img3.png"
    real_open = Path.open

    def open_(self: Path, *args, **kwargs):
        # Root reads every file whatever its mode, so the refusal a user would meet is raised here.
        if self == unreadable:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    results = []
    with pytest.raises(PermissionError):
        for result in DataFlux(settings).ingest_files([folder]):
            results.append(result)
    assert [Path(r["path"]).name for r in results] == ["img0.png", "img1.png", "img2.png"]
    rows = Catalog(settings).find_assets()
    assert sorted(r["filename"] for r in rows) == ["img0.png", "img1.png", "img2.png"]


def _process(settings: Settings, instance: dg.DagsterInstance):
    report = process_landing(settings, instance, defs)
    keys = instance.get_dynamic_partitions("media_files")
    statuses = {
        asset: {
            asset_id_of(k): v
            for k, v in instance.get_status_by_partition(dg.AssetKey(asset), keys, media_files).items()
        }
        for asset in ("media_file", "segments")
    }
    return report, statuses


def test_media_file_handles_every_media_type_with_its_probe(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = [
        make_image(src / "p.png", "PNG", (80, 60)),
        make_image(src / "j.jpg", "JPEG", (81, 60)),
        make_wav(src / "s.wav"),
        make_pdf(src / "d.pdf", ["A page about tides and harbours."]),
        make_markdown(src / "n.md", sections=1, words_per_section=60),
        make_video(src / "v.mp4", seconds=1.2, fps=10, size=(64, 48)),
        make_image(src / "w.webp", "WEBP", (70, 50)),
        make_audio_file(src / "a.flac", "flac", "flac"),
        make_text(src / "t.txt", words=80),
        make_html(src / "h.html", words=80),
    ]
    store, catalog = open_object_store(settings), Catalog(settings)
    list(ingest_paths(store, catalog, files))
    report, statuses = _process(settings, instance)
    assert report.failed == 0 and report.runs == 1
    rows = {r["filename"]: r for r in catalog.find_assets()}
    expected = {
        "p.png": ("image", "image/png"),
        "j.jpg": ("image", "image/jpeg"),
        "s.wav": ("audio", "audio/wav"),
        "d.pdf": ("document", "application/pdf"),
        "n.md": ("document", "text/markdown"),
        "v.mp4": ("video", "video/mp4"),
        "w.webp": ("image", "image/webp"),
        "a.flac": ("audio", "audio/flac"),
        "t.txt": ("document", "text/plain"),
        "h.html": ("document", "text/html"),
    }
    for name, (media_type, mime) in expected.items():
        row = rows[name]
        assert (row["media_type"], row["mime_type"], row["status"]) == (media_type, mime, "completed"), row
        assert row["storage_path"].startswith(f"objects/{row['id']}/original")
        assert store.head(row["storage_path"]).size == row["file_size"]
        assert row["landing_key"] is None and row["segment_count"] >= 1
    assert rows["p.png"]["width"] == 80 and rows["s.wav"]["metadata"]["sample_rate"] == 16000
    assert rows["d.pdf"]["metadata"]["page_count"] == 1
    assert not [i for i in store.list("landing/")]  # the inbox is empty after processing
    assert all(s.value == "MATERIALIZED" for s in statuses["segments"].values())
    from dataflux_pipelines.orchestration.runs import dagster_runs

    (run,) = [r for r in dagster_runs(instance) if r["job_name"] == "process_media"]
    assert run["partitions"] == len(files)  # the analytics facts count every file of a ranged run


def test_bad_files_fail_their_own_partition_with_a_reason_and_the_rest_carry_on(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    landing = _landing(settings)
    (landing / "empty.mp4").write_bytes(b"")
    make_elf_named_mp4(landing / "binary.mp4")
    make_truncated_mp4(landing / "cut.mp4")
    (landing / "lie.wav").write_text('{"json": "named like audio"}')
    make_image(landing / "fine.png", "PNG", (40, 30))
    report, statuses = _process(settings, instance)
    catalog = Catalog(settings)
    rows = {r["filename"]: r for r in catalog.find_assets()}
    assert rows["fine.png"]["status"] == "completed"
    assert (rows["empty.mp4"]["status"], rows["empty.mp4"]["reason_code"]) == ("failed", "empty_file")
    assert (rows["binary.mp4"]["status"], rows["binary.mp4"]["reason_code"]) == (
        "failed",
        "unsupported_media_type",
    )
    assert "ELF" in rows["binary.mp4"]["reason_message"]
    assert rows["cut.mp4"]["status"] == "failed"
    assert rows["cut.mp4"]["reason_code"] in ("truncated_media", "corrupt_media")
    assert (rows["lie.wav"]["status"], rows["lie.wav"]["reason_code"]) == ("failed", "type_mismatch")
    store = open_object_store(settings)
    for name in ("empty.mp4", "binary.mp4", "cut.mp4", "lie.wav"):
        asset_id = rows[name]["id"]
        assert rows[name]["storage_path"] is None and rows[name]["segment_count"] is None
        assert not list(store.list(layout.asset_prefix(asset_id)))  # nothing else written
        assert catalog.segments_for(asset_id) == []
        assert statuses["media_file"][asset_id].value == "FAILED"
    assert statuses["media_file"][rows["fine.png"]["id"]].value == "MATERIALIZED"
    assert report.failed == 4 and report.completed == 1


def test_ingest_process_status_end_to_end_through_the_cli(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "inbox" / "nested"
    folder.mkdir(parents=True)
    make_image(folder / "one.png", "PNG", (40, 30))
    make_pdf(folder.parent / "two.pdf", ["Harbour notes, page one."])
    runner = CliRunner()
    result = runner.invoke(
        cli, ["ingest", str(tmp_path / "inbox"), "--context", "field trip", "--priority", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "2 file(s) landed" in result.output
    assert sorted(i.key for i in open_object_store(settings).list("landing/") if not i.key.endswith(".json"))
    result = runner.invoke(cli, ["process", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["files"] == 2 and report["completed"] == 2 and report["runs"] == 1
    result = runner.invoke(cli, ["status", "--json"])
    status = json.loads(result.output)
    assert status["totals"] == {"completed": 2}
    assert {a["filename"] for a in status["assets"]} == {"one.png", "two.pdf"}
    assert all(Catalog(settings).get_asset(a["id"])["context"] == "field trip" for a in status["assets"])
    again = runner.invoke(cli, ["process", "--json"])
    assert json.loads(again.output[again.output.index("{") :])["files"] == 0


def test_a_landing_sidecar_is_not_taken_for_a_media_file(settings: Settings) -> None:
    landing = _landing(settings)
    make_image(landing / "x.png", "PNG", (20, 20))
    (landing / sidecar_key("x.png")).write_text(json.dumps({"priority": 1}))
    plan = plan_landing(open_object_store(settings), Catalog(settings), set(), settle_seconds=0)
    assert [p.landing_key for p in plan.pending] == ["landing/x.png"] and plan.pending[0].priority == 1


def test_a_reanalysis_request_runs_that_partition_again(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    from dataflux_pipelines.landing import CONTROL_PREFIX, request_reanalysis

    src = make_image(tmp_path / "again.png", "PNG", (48, 36))
    store, catalog = open_object_store(settings), Catalog(settings)
    [(_, receipt)] = list(ingest_paths(store, catalog, [src]))
    assert process_landing(settings, instance, defs).completed == 1
    runs_before = len(instance.get_runs())
    request_reanalysis(store, receipt.asset_id, priority=2, force=True)
    report = process_landing(settings, instance, defs)
    assert report.files == 1 and report.completed == 1
    assert len(instance.get_runs()) > runs_before
    assert not list(store.list(CONTROL_PREFIX))  # the request was consumed
    # A request for an id that is not a partition is dropped instead of lingering.
    request_reanalysis(store, "00000000-0000-4000-8000-000000000000", priority=None, force=False)
    assert process_landing(settings, instance, defs).files == 0
    assert not list(store.list(CONTROL_PREFIX))


def test_a_video_gets_soundtrack_passages_and_speech_gets_a_transcript_with_a_speech_model(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiny_models import build_tiny_whisper

    monkeypatch.setenv("DATAFLUX_SPEECH_MODEL", str(build_tiny_whisper(tmp_path / "tiny-whisper")))
    speech_settings = Settings.from_env()
    video = make_video(tmp_path / "talk.mp4", seconds=3, fps=10, size=(64, 48))
    wav = make_wav(tmp_path / "talk.wav")
    list(ingest_paths(open_object_store(speech_settings), Catalog(speech_settings), [video, wav]))
    report = process_landing(speech_settings, instance, defs)
    assert report.completed == 2, report.failures
    catalog = Catalog(speech_settings)
    rows = {r["filename"]: r for r in catalog.find_assets()}
    video_segments = catalog.segments_for(rows["talk.mp4"]["id"])
    assert {s["segment_type"] for s in video_segments} == {"shot", "audio"}
    assert rows["talk.mp4"]["summary"]["soundtrack"]["passages"] >= 1
    passages = catalog.segments_for(rows["talk.wav"]["id"])
    speech = [s for s in passages if s["audio_features"]["class"] == "speech"]
    assert speech, [s["audio_features"]["class"] for s in passages]
    # The tiny Whisper has random weights: the text is noise, but it went through the real model.
    assert all(isinstance(s["transcript"], str) for s in speech)
    assert all(s["transcript"] is None for s in passages if s["audio_features"]["class"] != "speech")


def test_an_older_catalog_table_gains_the_records_new_columns_as_nulls(settings: Settings) -> None:
    import pyarrow as pa

    from dataflux_pipelines import records

    catalog = Catalog(settings)
    old_fields = [f for f in records.ASSETS_SCHEMA if f.name in ("id", "filename", "status")]
    catalog.db.create_table(layout.ASSETS_TABLE, schema=pa.schema(old_fields))
    catalog.db.open_table(layout.ASSETS_TABLE).add(
        [{"id": "00000000-0000-4000-8000-000000000001", "filename": "old.png", "status": "completed"}]
    )
    reopened = Catalog(settings)  # a later version of DataFlux opening the older table
    assert set(reopened.assets.schema.names) == set(records.ASSETS_SCHEMA.names)
    [row] = reopened.find_assets()
    assert row["filename"] == "old.png" and row["context"] is None
