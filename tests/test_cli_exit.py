"""`dataflux process` as a real process: it ends without the interpreter's teardown (its exit handlers
still run), with its exit code, and everything it reported is in the stores for the next process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from media_factory import make_markdown

from dataflux_pipelines.settings import REPO_ROOT, Settings


def _dataflux(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "DATAFLUX_DEVICE": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "dataflux_api.cli.main", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _report(stdout: str) -> dict:
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def test_process_exits_with_its_code_and_leaves_everything_written(
    settings: Settings, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_markdown(inbox / "notes.md", sections=2, words_per_section=60)
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 64)
    assert _dataflux("ingest", str(inbox)).returncode == 0

    done = _dataflux("process", "--json")
    report = _report(done.stdout)  # the whole report arrived before the process ended
    assert report["files"] == 2 and report["completed"] == 1 and report["failed"] == 1
    assert done.returncode == 1  # a failed file: exit code 1, as without the fast exit

    status = json.loads(_dataflux("status", "--json").stdout)
    assert status["totals"] == {"completed": 1, "failed": 1}
    again = _dataflux("process", "--json")
    assert again.returncode == 0 and _report(again.stdout)["files"] == 0
    # The runs the first process recorded are in Dagster's storage, finished.
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert runs and all(r.is_finished for r in runs)
        assert {r.job_name for r in runs} >= {"process_media", "refresh_shared"}
