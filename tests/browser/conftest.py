"""Browser tests: Debian's Chromium driven by Playwright against the real app over HTTP.

One processed sample library per session (the demo's sample media through the real pipeline), one
open-mode server and one server with a JWT secret over it. Without /usr/bin/chromium every browser
test is skipped and the run ends with a loud notice (CI installs Chromium, so it never skips there).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, Server

_skipped: list[str] = []


def _missing_reason() -> str | None:
    if not CHROMIUM.is_file():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make setup)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_reason()
    if reason and os.environ.get("DATAFLUX_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"DATAFLUX_REQUIRE_BROWSER=1 but {reason}")
    for item in items:
        if "tests/browser/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"BROWSER TESTS SKIPPED: {reason}"))
                _skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skipped:
        return
    bar = "!" * 78
    terminalreporter.write_line(bar, red=True, bold=True)
    terminalreporter.write_line(
        f"!! {len(_skipped)} BROWSER TEST(S) SKIPPED: {_missing_reason()}", red=True, bold=True
    )
    terminalreporter.write_line(
        "!! The web UI was NOT tested. Install Debian's chromium and rerun.", red=True
    )
    terminalreporter.write_line(bar, red=True, bold=True)


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo's sample media, landed and processed by the real pipeline (Dagster, in this process)."""
    if _missing_reason():
        pytest.skip(_missing_reason() or "")
    from dataflux_api.cli.pipeline import run_process
    from dataflux_pipelines.catalog import Catalog
    from dataflux_pipelines.landing import ingest_paths
    from dataflux_pipelines.objectstore import open_object_store
    from dataflux_pipelines.samples import SAMPLE_CONTEXT, write_samples
    from dataflux_pipelines.settings import REPO_ROOT, Settings

    root = tmp_path_factory.mktemp("web")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        "DATAFLUX_HOME": str(root / "home"),
        "DAGSTER_HOME": str(dagster_home),
        # The server reads what the pipeline (this process or `dataflux process`) commits at once.
        "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0",
    }
    # The environment is set only while the library is built (Dagster finds its instance through
    # DAGSTER_HOME); the servers get the Settings object and `dataflux process` gets `env` explicitly.
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("DATAFLUX_") and name != "DATAFLUX_CHROMIUM":
                mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        settings = Settings.from_env()
        files = write_samples(root / "samples")
        # A re-encoded, half-size copy of a demo video: a real near-duplicate for the asset page.
        files.append(
            _reencoded_copy(root / "samples" / "coast_and_city.mp4", root / "samples" / "coast_copy.mp4")
        )
        store, catalog = open_object_store(settings), Catalog(settings)
        for file in files:
            list(ingest_paths(store, catalog, [file], context=SAMPLE_CONTEXT.get(file.name)))
        report = run_process(settings, quiet=True)
        assert report.completed == len(files), report.failures
        child_env = dict(os.environ)
    ids = {row["filename"]: row["id"] for row in Catalog(settings, reader=True).find_assets()}
    transcript = _add_transcript(settings, ids["studio_interview.mp4"])
    yield {
        "settings": settings,
        "ids": ids,
        "samples": root / "samples",
        "root": root,
        "env": child_env,
        "transcript": transcript,
    }


def _reencoded_copy(src: Path, dst: Path) -> Path:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        rate = round(stream_in.average_rate or 24)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = (
            stream_in.codec_context.width // 2 // 2 * 2,
            stream_in.codec_context.height // 2 // 2 * 2,
        )
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "30", "preset": "ultrafast"}
        for index, frame in enumerate(inp.decode(stream_in)):
            small = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            small.pts, small.time_base = index, Fraction(1, rate)  # one tick per frame keeps the duration
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def _add_transcript(settings: Any, asset_id: str) -> dict[str, Any]:
    """What the speech stage stores on a passage (its `transcript` column), written by the real writer.

    The offline transcriber is another component (its own issue); until it is in the build no sample
    has speech the pipeline can transcribe, and the page must show whatever transcript is stored.
    """
    from dataflux_pipelines.catalog import Catalog

    catalog = Catalog(settings)
    rows = catalog.segments_for(asset_id, with_vectors=True)
    passage = next(r for r in rows if r["segment_type"] == "audio")
    passage["transcript"] = "Welcome back to the studio. Today we walk through the old forest."
    catalog.replace_segments(asset_id, rows)
    return {"segment_id": passage["id"], "start": passage["start_time"], "text": passage["transcript"]}


def _warm(url: str, headers: dict[str, str] | None = None) -> None:
    # The first search loads the text model (seconds on 2 cores); pay it before any page waits on it.
    httpx.post(f"{url}/api/v1/search", json={"query": "warm up"}, headers=headers, timeout=120)


@pytest.fixture(scope="session")
def server(library: dict[str, Any]) -> Iterator[Server]:
    from dataflux_api.app import create_app

    with Server(create_app(library["settings"])) as srv:
        _warm(srv.url)
        yield srv


@pytest.fixture(scope="session")
def auth_server(library: dict[str, Any]) -> Iterator[Server]:
    from api_support import SECRET, bearer

    from dataflux_api.app import create_app

    settings = dataclasses.replace(library["settings"], jwt_secret=SECRET)
    with Server(create_app(settings)) as srv:
        _warm(srv.url, bearer(["search"]))
        yield srv


# Package scope: while Playwright's sync API is open an event loop runs in this thread, and later tests
# that call asyncio.run (the MCP clients) would fail: it stops with the browser test module.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
