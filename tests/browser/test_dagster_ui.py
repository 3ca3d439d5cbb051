"""The Dagster UI shows what a file became: its partition's materialization with a thumbnail preview,
and the per-file asset checks evaluated on that partition (a real dagster-webserver over the sample
library, driven by Debian's Chromium)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import screenshot
from services import free_port, wait_for_http

from dataflux_pipelines.settings import REPO_ROOT


@pytest.fixture(scope="module")
def dagster_ui(library: dict[str, Any]) -> Iterator[str]:
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=library["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/server_info", "dagster-webserver", status=200)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def _partition_of(library: dict[str, Any], filename: str) -> str:
    from dataflux_pipelines.orchestration.partitions import partition_key

    return partition_key(library["ids"][filename], filename)


def _dismiss_dagster_newsletter(page: Any) -> None:
    # The open-source UI greets a new browser with a community dialog over the page.
    try:
        page.get_by_role("button", name="Skip").click(timeout=8000)
    except Exception:  # the dialog did not come: nothing to dismiss
        pass


def test_a_files_partition_shows_its_metadata_and_thumbnail(
    dagster_ui: str, library: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    key = _partition_of(library, "coast_and_city.mp4")
    page.goto(f"{dagster_ui}/assets/segments?view=partitions&partition={urllib.parse.quote(key)}")
    page.get_by_text("[Show Markdown]").wait_for(timeout=60_000)
    _dismiss_dagster_newsletter(page)
    # Long names are middle-truncated on screen; the full text is in the page (a hidden measure).
    assert page.get_by_text(key).count() >= 1
    for field in ("segment_count", "shot_count", "transcripts", "screen_text", "seconds"):
        assert page.get_by_text(field, exact=True).filter(visible=True).count() >= 1, field
    page.get_by_text("[Show Markdown]").click()
    preview = page.locator("img[src^='data:image/jpeg;base64,']")
    preview.wait_for()
    assert preview.evaluate("img => img.naturalWidth") > 0
    screenshot(page, "dagster-file-partition", tmp_path)


def test_a_files_checks_are_evaluated_on_its_partition(
    dagster_ui: str, library: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{dagster_ui}/assets/segment_embeddings?view=checks&checkDetail=transcript_and_text_coverage")
    page.get_by_text("Succeeded").filter(visible=True).first.wait_for(timeout=60_000)
    _dismiss_dagster_newsletter(page)
    for check in ("embedded_with_current_models", "transcript_and_text_coverage"):
        assert page.get_by_text(check).count() >= 1, check
    # The check's own Partitions tab (the asset's comes first) lists every file with its result.
    page.get_by_role("tab", name="Partitions").nth(1).click()
    passed = f"Passed ({len(library['ids'])})"
    page.get_by_text(passed).filter(visible=True).first.wait_for()
    assert page.get_by_text("Missing (0)").filter(visible=True).count() == 1
    for filename in library["ids"]:
        assert page.get_by_text(_partition_of(library, filename)).count() >= 1, filename
    screenshot(page, "dagster-file-checks", tmp_path)
