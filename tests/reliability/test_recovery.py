"""A killed `dataflux process` strands nothing: the next one marks its runs failed and finishes its files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import media_factory as mf
import pytest
from click.testing import CliRunner

from dataflux_api.cli.main import cli
from dataflux_api.doctor import check_dagster
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.orchestration.recovery import MAX_ATTEMPTS, reconcile
from dataflux_pipelines.records import Status
from dataflux_pipelines.settings import Settings

pytestmark = pytest.mark.reliability


def _statuses(settings: Settings) -> dict[str, str]:
    return {r["id"]: r["status"] for r in Catalog(settings, reader=True).find_assets()}


def _kill_mid_run(settings: Settings, files: list[Path]) -> None:
    """Start `dataflux process`, wait until its run has files `processing`, then SIGKILL it."""
    assert CliRunner().invoke(cli, ["ingest", *map(str, files)]).exit_code == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "dataflux_api.cli.main", "process"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if Status.PROCESSING.value in _statuses(settings).values():
                break
            assert child.poll() is None, "dataflux process ended before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("no file reached `processing` within 240 s")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def test_files_of_a_killed_process_run_complete_on_the_next_process(
    dataflux_env: Settings, tmp_path: Path
) -> None:
    settings = dataflux_env
    files = [mf.make_video(tmp_path / f"clip{i}.mp4", seconds=2 + i, scenes=2) for i in range(3)]
    _kill_mid_run(settings, files)
    stranded = _statuses(settings)
    assert Status.PROCESSING.value in stranded.values()

    with dg.DagsterInstance.get() as instance:
        stuck = [c for c in check_dagster(settings) if c.name == "stuck work"]
        assert stuck and not stuck[0].ok and "dataflux process" in stuck[0].fix
        report = process_landing(settings, instance, defs)
        assert report.dead_runs >= 1 and report.requeued >= 1
        killed = [
            r
            for r in instance.get_run_records(dg.RunsFilter(job_name="process_media"))
            if r.dagster_run.tags.get("dataflux/pid") not in (None, str(os.getpid()))
        ]
        assert killed and all(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in killed)

    assert set(_statuses(settings).values()) == {Status.COMPLETED.value}
    rows = Catalog(settings, reader=True).find_assets()
    assert len(rows) == 3 and all(
        r["attempts"] == 1 for r in rows if r["id"] in stranded and stranded[r["id"]] == "processing"
    )
    assert [c for c in check_dagster(settings) if c.name == "stuck work"] == []


def test_a_file_whose_run_keeps_dying_ends_failed_with_run_died(
    dataflux_env: Settings, tmp_path: Path
) -> None:
    settings = dataflux_env
    clip = mf.make_video(tmp_path / "clip.mp4", seconds=2)
    assert CliRunner().invoke(cli, ["ingest", str(clip)]).exit_code == 0
    with dg.DagsterInstance.get() as instance:
        process_landing(settings, instance, defs)
        catalog = Catalog(settings)
        (row,) = catalog.find_assets()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # What a killed run leaves behind: the file `processing` and no live run covering it.
            catalog.set_status([row["id"]], Status.PROCESSING)
            report = reconcile(instance, catalog)
            if attempt < MAX_ATTEMPTS:
                assert report.requeued == [row["id"]] and report.recoverable == {row["id"]: attempt}
        assert report.failed == [row["id"]]
    (after,) = Catalog(settings, reader=True).find_assets()
    assert after["status"] == Status.FAILED.value and after["reason_code"] == "run_died"
    assert after["attempts"] == MAX_ATTEMPTS
