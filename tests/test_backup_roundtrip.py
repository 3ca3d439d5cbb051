"""Backup, wipe, restore into empty homes: the same search results, asset list and Dagster history."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import lancedb
import pytest
from api_support import private_homes
from click.testing import CliRunner
from media_factory import make_image, make_markdown, make_text

from dataflux_api.cli.main import cli
from dataflux_api.cli.pipeline import run_process, status_rows
from dataflux_api.query.models import SearchRequest
from dataflux_api.service import DataFlux
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.store import live_snapshot
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.backup import MANIFEST, BackupError, create_backup, restore_backup
from dataflux_pipelines.settings import Settings

GRAPH_STATE = ("graph/contrib/", "control/tombstones/")
QUERIES = ("hostile files fail their own partition", "segment offsets point at the exact passage")


def _searches(settings: Settings) -> dict[str, list[tuple[str, str, float]]]:
    service = DataFlux(settings)
    out = {}
    for query in QUERIES:
        response = service.search(SearchRequest(query=query, limit=10))
        out[query] = [(r.id, r.type, round(r.score, 5)) for r in response.results]
    return out


def _assets(settings: Settings) -> list[tuple[str, str, str, int]]:
    return [(r["id"], r["filename"], r["status"], r["segment_count"]) for r in status_rows(settings)]


def _dagster_state(settings: Settings) -> dict[str, Any]:
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        return {
            "partitions": sorted(instance.get_dynamic_partitions("media_files")),
            "runs": sorted((r.run_id, r.job_name, r.status.value) for r in instance.get_runs()),
            "materialized": sorted(instance.get_materialized_partitions(dg.AssetKey("media_file"))),
        }


def _objects(settings: Settings) -> dict[str, int]:
    return {info.key: info.size for info in open_object_store(settings).list("")}


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three small files processed once in a private home; the tests below back it up and restore it."""
    root = tmp_path_factory.mktemp("backup")
    with pytest.MonkeyPatch.context() as mp:
        settings = private_homes(mp, root)
        inbox = root / "inbox"
        inbox.mkdir()
        make_markdown(inbox / "notes.md")
        make_text(inbox / "readme.txt")
        make_image(inbox / "photo.png", "PNG", (96, 64))
        list(ingest_paths(open_object_store(settings), Catalog(settings), [inbox]))
        report = run_process(settings, quiet=True)
        assert (report.completed, report.failed) == (3, 0)
        yield {
            "root": root,
            "settings": settings,
            "searches": _searches(settings),
            "assets": _assets(settings),
            "dagster": _dagster_state(settings),
            "objects": _objects(settings),
            "graph": live_snapshot(settings.graph_dir),
        }


def test_a_restore_into_empty_homes_answers_the_same_searches_and_lists_the_same_assets(
    processed: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source: Settings = processed["settings"]
    assert all(processed["searches"].values()), "the corpus must answer every query before the backup"
    backup = tmp_path / "backup"
    runner = CliRunner()
    made = runner.invoke(cli, ["backup", str(backup), "--with-objects", "--json"], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    manifest = json.loads(made.stdout)
    assert manifest["counts"]["assets"] == 3
    assert manifest["objects"]["copied"] == len(processed["objects"]) - manifest["graph"]["contrib"]["files"]
    assert manifest["graph"]["contrib"]["files"] == 3
    print(f"\nbackup: {manifest['files']} files, {manifest['bytes']} bytes, {manifest['seconds']} s")

    # Wipe: a new machine with nothing but the backup.
    home, dagster_home = tmp_path / "new-home", tmp_path / "new-dagster-home"
    monkeypatch.setenv("DATAFLUX_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    restored = runner.invoke(cli, ["restore", str(backup), "--json"], catch_exceptions=False)
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    print(f"restore: {report['seconds']} s")
    target = Settings.from_env()
    assert target.home == home and target.home != source.home

    assert _searches(target) == processed["searches"]
    assert _assets(target) == processed["assets"]
    assert _dagster_state(target) == processed["dagster"]
    assert _objects(target) == processed["objects"]
    snapshot = live_snapshot(target.graph_dir)
    assert snapshot is not None and snapshot.version == processed["graph"].version
    assert snapshot.path.read_bytes() == processed["graph"].path.read_bytes()
    facts = sorted(p.relative_to(home).as_posix() for p in (home / "analytics").rglob("*.parquet"))
    assert facts == sorted(
        p.relative_to(source.home).as_posix() for p in (source.home / "analytics").rglob("*.parquet")
    )


def test_restore_refuses_a_home_that_is_not_empty_and_changes_nothing(
    processed: dict[str, Any], tmp_path: Path
) -> None:
    source: Settings = processed["settings"]
    backup = tmp_path / "backup"
    create_backup(source, backup)
    versions = Catalog(source).versions()
    with pytest.raises(BackupError) as caught:
        restore_backup(source, backup)
    assert caught.value.code == "restore_target_not_empty"
    assert str(source.home) in caught.value.message
    assert Catalog(source).versions() == versions


def test_restore_rolls_tables_back_to_the_versions_recorded_when_the_backup_began(
    processed: dict[str, Any], tmp_path: Path
) -> None:
    source: Settings = processed["settings"]
    backup = tmp_path / "backup"
    manifest = create_backup(source, backup)
    # What a copy taken while a writer commits looks like: a newer version beside the recorded one.
    copied = lancedb.connect(backup / "lance").open_table("assets")
    copied.delete("true")
    assert copied.count_rows() == 0 and copied.version > manifest["lance"]["tables"]["assets"]["version"]

    target = source.with_home(tmp_path / "home")
    target = dataclasses.replace(target, dagster_home=tmp_path / "dagster_home")
    report = restore_backup(target, backup)
    assert "assets" in report["rolled_back"]
    assert report["tables"]["assets"]["rows"] == 3
    assert _assets(target) == processed["assets"]


def test_backup_refuses_a_destination_that_is_not_empty(processed: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(BackupError) as caught:
        create_backup(processed["settings"], tmp_path)
    assert caught.value.code == "backup_target_not_empty"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_backup_folder_without_its_manifest_is_refused_as_incomplete(
    processed: dict[str, Any], tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    create_backup(processed["settings"], backup)
    (backup / MANIFEST).unlink()
    target = processed["settings"].with_home(tmp_path / "home")
    with pytest.raises(BackupError) as caught:
        restore_backup(target, backup)
    assert caught.value.code == "backup_incomplete"
    assert not (tmp_path / "home").exists()


def test_a_backup_without_objects_keeps_their_manifest_and_reports_them_missing_after_restore(
    processed: dict[str, Any], tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    manifest = create_backup(processed["settings"], backup)
    assert not manifest["objects"]["included"] and not (backup / "objects").exists()
    keys = [json.loads(line)["key"] for line in (backup / "objects.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(k for k in processed["objects"] if not k.startswith(GRAPH_STATE))
    assert any("--with-objects" in item for item in manifest["not_included"])

    target = processed["settings"].with_home(tmp_path / "home")
    target = dataclasses.replace(target, dagster_home=tmp_path / "dagster_home")
    report = restore_backup(target, backup)
    assert report["objects"]["missing"] == len(keys) and report["objects"]["restored"] == 0
    # Graph contributions are not objects to re-upload: the backup always holds them, under graph/.
    assert _objects(target) == {k: v for k, v in processed["objects"].items() if k not in keys}
    assert _assets(target) == processed["assets"]
