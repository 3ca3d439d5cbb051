"""SIGKILL of the real `dataflux process`: at each stage boundary (DATAFLUX_KILL_AT), and at random
moments of a run, over and over. Every store keeps its invariant at each kill (docs/architecture.md,
"Invariants each store keeps"), and the next `dataflux process` completes every file with no row twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from audit import Audit, audit
from click.testing import CliRunner
from hostile import ordinary_files
from tally import TALLY, full_run

from dataflux_api.cli.main import cli
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog, table_names
from dataflux_pipelines.identity import segment_id_for
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.pipeline import STAGES
from dataflux_pipelines.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(3600 if full_run() else 900)]

KILLS = 20 if full_run() else 2  # random-moment kills of one run after another
# Every stage boundary in the full run; in `make test` the two in the middle of a file's work (the
# first and last are the cheapest and the most exercised by the random kills).
BOUNDARIES = STAGES if full_run() else STAGES[1:3]
RUN_LIMIT_S = 600


class _Run:
    """One `dataflux process` child; its log goes to a file (a pipe nobody reads would block it)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "dataflux_api.cli.main", "process"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )

    def wait(self, timeout: float = RUN_LIMIT_S) -> int:
        return self.child.wait(timeout=timeout)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _statuses(settings: Settings) -> dict[str, str]:
    return {r["id"]: r["status"] for r in Catalog(settings, reader=True).find_assets()}


def _check_whole(settings: Settings, result: Audit) -> None:
    """What every kill must leave: ids derived as designed, segment sets whole, no row twice."""
    assert not result.duplicates, result.duplicates
    store = open_object_store(settings)
    catalog = Catalog(settings, reader=True)
    segments = (
        catalog.db.open_table(layout.SEGMENTS_TABLE).to_arrow().to_pylist()
        if (layout.SEGMENTS_TABLE in table_names(catalog.db))
        else []
    )
    for row in segments:
        assert row["id"] == segment_id_for(row["asset_id"], row["segment_type"], row["sequence_number"])
    for asset_id, row in result.assets.items():
        if row.get("storage_path"):
            assert store.head(row["storage_path"]) is not None, (
                f"{asset_id}: catalog points at a missing copy"
            )
        elif row["status"] != "failed":
            assert store.head(row["landing_key"]) is not None, f"{asset_id}: neither landing nor a copy"
        mine = [s for s in segments if s["asset_id"] == asset_id]
        if mine and row.get("segment_count") is not None:
            assert len(mine) == row["segment_count"], f"{asset_id}: a half-replaced segment set"


def _final_run(settings: Settings, env: dict[str, str], log: Path) -> Audit:
    run = _Run(env, log)
    assert run.wait() == 0, run.tail()
    result = audit(settings)
    _check_whole(settings, result)
    assert not result.stuck and not result.half_written, result
    assert set(_statuses(settings).values()) == {"completed"}, _statuses(settings)
    return result


def test_a_kill_at_every_stage_boundary_resumes_to_the_same_complete_state(
    dataflux_env: Settings, tmp_path: Path
) -> None:
    settings = dataflux_env
    files = [ordinary_files(tmp_path, 4)[i] for i in (0, 1, 3)]  # notes, a picture and a clip
    assert CliRunner().invoke(cli, ["ingest", *map(str, files)]).exit_code == 0
    env = {**os.environ, "DATAFLUX_MAX_RUN_ATTEMPTS": str(len(STAGES) + 2)}
    for stage in BOUNDARIES:
        run = _Run({**env, "DATAFLUX_KILL_AT": stage}, tmp_path / f"killed-at-{stage}.log")
        assert run.wait() == -signal.SIGKILL, f"not killed at {stage}: {run.tail()}"
        TALLY.add("inputs_tried")
        after = audit(settings)
        _check_whole(settings, after)
        # Killed after `stage`: the stage's writes are all there, nothing claims more.
        assert set(_statuses(settings).values()) == {"processing"}, (stage, _statuses(settings))
        assert all(r.get("storage_path") for r in after.assets.values()), stage
        if stage != "media_file":
            assert all(after.segments_per_asset[a] for a in after.assets), stage
    result = _final_run(settings, env, tmp_path / "final.log")
    assert all(r["attempts"] == len(BOUNDARIES) for r in result.assets.values())
    TALLY.add("kills_survived", len(BOUNDARIES))


def test_random_kills_of_process_runs_lose_nothing_and_duplicate_nothing(
    dataflux_env: Settings, tmp_path: Path
) -> None:
    settings = dataflux_env
    files = ordinary_files(tmp_path, 8 if full_run() else 4)
    assert CliRunner().invoke(cli, ["ingest", *map(str, files)]).exit_code == 0
    env = {**os.environ, "DATAFLUX_MAX_RUN_ATTEMPTS": str(KILLS + 2)}
    chance = random.Random(16)
    killed = 0
    while killed < KILLS:
        run = _Run(env, tmp_path / f"run-{killed}.log")
        child = run.child
        deadline = time.monotonic() + RUN_LIMIT_S
        while "processing" not in _statuses(settings).values():
            if child.poll() is not None:
                break  # the run finished before the kill: nothing left to kill
            assert time.monotonic() < deadline, "no file reached processing"
            time.sleep(0.2)
        if child.poll() is not None:
            assert child.returncode == 0, run.tail()
            break  # the run finished before a kill found it: nothing is left to kill
        time.sleep(chance.uniform(0.0, 8.0))  # a random point of the run
        if child.poll() is not None:
            assert child.returncode == 0, run.tail()
            break  # it finished inside the pause
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        killed += 1
        _check_whole(settings, audit(settings))
    result = _final_run(settings, env, tmp_path / "final.log")
    assert len(result.assets) == len(files)
    TALLY.add("inputs_tried", killed)
    TALLY.add("kills_survived", killed)
    TALLY.add("duplicates", len(result.duplicates))
    TALLY.add("stuck_files", len(result.stuck))
