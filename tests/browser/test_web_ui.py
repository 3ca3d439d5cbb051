"""The web UI in a real browser (Chromium via Playwright) over HTTP, on sample media the pipeline processed."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser_support import screenshot
from PIL import Image

pytestmark = pytest.mark.browser


def first_titles(page: Any) -> list[str]:
    return page.locator(".results .hit .title").all_inner_texts()


def test_search_by_url_shows_a_grid_with_type_score_and_why(page: Any, server: Any, tmp_path: Path) -> None:
    page.goto(f"{server.url}/?q=documents+about+ocean+tides+and+the+harbour")
    assert (
        page.locator("input[type=search][name=q]").input_value()
        == "documents about ocean tides and the harbour"
    )
    hit = page.locator(".results .hit").first
    assert hit.locator(".title").inner_text() == "harbour_notes.pdf"
    assert hit.locator(".type").inner_text().lower() == "document"
    assert "score" in hit.locator(".score").inner_text()
    why = hit.locator(".why").inner_text()
    assert "tides" in why and "harbour" in why
    assert hit.locator(".highlight mark").count() >= 1
    # A document hit links to its page.
    assert "#page-" in (hit.locator("a.hit-link").get_attribute("href") or "")

    # The same query with a media-type filter, from the URL: only images.
    page.goto(f"{server.url}/?q=city+at+night&type=image")
    types = page.locator(".results .hit .type").all_inner_texts()
    assert types and {t.lower() for t in types} == {"image"}
    assert first_titles(page)[0] == "city_at_night.png"


def test_search_by_typing_puts_the_query_in_the_url_and_hides_weak_matches(
    page: Any, server: Any, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/")
    assert page.locator(".recent .card").count() >= 9  # the empty query shows the newest files
    page.fill("input[name=q]", "city at night")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/?q=city+at+night*")
    titles = first_titles(page)
    assert titles[0] == "city_at_night.png"
    screenshot(page, "search-results", tmp_path, full_page=True)
    shown = len(titles)
    more = page.locator("a", has_text="weaker match")
    assert more.count() == 1, "weak matches are hidden behind a link"
    more.click()
    page.wait_for_url("**weak=1*")
    assert len(first_titles(page)) > shown
    # Reloading the URL is the same search: a search is a link one can share.
    page.reload()
    assert page.locator("input[name=q]").input_value() == "city at night"


def test_a_video_hit_opens_the_player_at_its_time_and_range_requests_seek(
    page: Any, server: Any, library: dict[str, Any], tmp_path: Path
) -> None:
    media: list[dict[str, Any]] = []

    def on_response(response: Any) -> None:
        if "/download" in response.url:
            media.append(
                {
                    "status": response.status,
                    "range": response.request.headers.get("range"),
                    "content_range": response.headers.get("content-range"),
                    "type": response.headers.get("content-type"),
                }
            )

    page.on("response", on_response)
    page.goto(f"{server.url}/?q=city+skyline+at+night&type=video")
    hit = page.locator(".results .hit", has_text="coast_and_city.mp4").first
    # A moment inside the file (not its first frame), so starting there is visible.
    moments = hit.locator("a.moment")
    starts = [float((m.get_attribute("href") or "").split("?t=")[1].split("#")[0]) for m in moments.all()]
    pick = next(i for i, t in enumerate(starts) if t > 0.5)
    start = starts[pick]
    moments.nth(pick).click()
    page.wait_for_url(f"**/assets/{library['ids']['coast_and_city.mp4']}?t=*")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {start}) < 0.3", timeout=10_000
    )
    # The browser's own range requests were answered with 206 and a Content-Range, as video/mp4.
    assert any(m["status"] == 206 and m["content_range"] for m in media), media
    assert all(m["type"] == "video/mp4" for m in media if m["status"] in (200, 206)), media
    # Seeking works: the whole file is seekable and a jump lands where asked.
    seekable_end = page.evaluate("document.getElementById('player').seekable.end(0)")
    assert seekable_end > 4.5
    landed = page.evaluate(
        """() => new Promise(resolve => {
            const v = document.getElementById('player');
            v.addEventListener('seeked', () => resolve(v.currentTime), {once: true});
            v.currentTime = 4.2;
        })"""
    )
    assert abs(landed - 4.2) < 0.1
    # A shot in the timeline seeks the player in place and puts the time in the URL.
    shot = page.locator(".lane .seg-link[data-seek]").nth(2)
    seek_to = float(shot.get_attribute("data-seek") or "nan")
    shot.click()
    page.wait_for_function(f"() => Math.abs(document.getElementById('player').currentTime - {seek_to}) < 0.3")
    assert f"t={seek_to:.2f}" in page.url
    page.evaluate("document.getElementById('player').pause()")
    page.goto(f"{server.url}/assets/{library['ids']['coast_and_city.mp4']}?t={start:.2f}")
    page.wait_for_function(
        f"() => {{ const v = document.getElementById('player');"
        f" return v.readyState >= 3 && !v.seeking && Math.abs(v.currentTime - {start}) < 0.3; }}"
    )
    assert "Starting at" in page.locator("#start-note").inner_text()
    # Headless Chromium keeps its loading spinner over a paused, never-played video: play a moment
    # (muted) and return to the start, so the screenshot shows the frame at that time.
    page.evaluate(
        f"""async () => {{
            const v = document.getElementById('player');
            v.muted = true;
            await v.play();
            v.pause();
            await new Promise(r => {{ v.addEventListener('seeked', r, {{once: true}}); v.currentTime = {start}; }});
            v.muted = false;
        }}"""
    )
    page.wait_for_timeout(300)
    screenshot(page, "asset-player", tmp_path, full_page=True)


def test_the_asset_page_shows_segments_transcript_labels_and_duplicates(
    page: Any, server: Any, library: dict[str, Any], tmp_path: Path
) -> None:
    asset_id = library["ids"]["studio_interview.mp4"]
    page.goto(f"{server.url}/assets/{asset_id}")
    assert page.locator("h1").inner_text() == "studio_interview.mp4"
    assert page.locator(".status").first.inner_text() == "completed"
    detail = httpx.get(f"{server.url}/api/v1/assets/{asset_id}").json()
    shots = [s for s in detail["segments"] if s["segment_type"] == "shot"]
    lane = page.locator(".lane", has=page.locator("h2", has_text="Shots"))
    assert lane.locator(".seg").count() == len(shots) >= 2
    assert lane.locator(".seg img").count() == len(shots)  # keyframe thumbnails
    line = page.locator(".transcript li").first
    assert library["transcript"]["text"] in line.inner_text()
    line.locator("a.ts").click()
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {library['transcript']['start']}) < 0.3"
    )
    assert page.locator(".chips .chip").count() >= 1  # labels and concepts

    # A re-encoded half-size copy of the coast video is its near-duplicate, shot by shot, with spans.
    page.goto(f"{server.url}/assets/{library['ids']['coast_and_city.mp4']}")
    duplicates = page.locator("section[aria-labelledby=dup-title] .related > li")
    assert duplicates.count() >= 1
    assert page.locator("section[aria-labelledby=dup-title] .spans a").count() >= 1
    assert page.locator("section[aria-labelledby=sim-title] .sim").count() >= 1

    # Thumbnails and keyframes are cacheable and revalidate with a 304.
    thumb = httpx.get(f"{server.url}{detail['thumbnail_url']}")
    assert thumb.headers["content-type"].startswith("image/")
    assert "max-age" in thumb.headers["cache-control"] and thumb.headers["etag"]
    again = httpx.get(
        f"{server.url}{detail['thumbnail_url']}", headers={"If-None-Match": thumb.headers["etag"]}
    )
    assert again.status_code == 304

    # A failed file shows its reason code and message; an unknown id is a readable 404 page.
    page.goto(f"{server.url}/assets/00000000-0000-4000-8000-000000000000")
    assert page.locator(".error-status").inner_text() == "404"
    assert "asset_not_found" in page.content()


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((90, 160, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_uploads_show_progress_until_searchable_and_a_duplicate_names_the_existing_asset(
    page: Any, server: Any, library: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "lighthouse_log.md"
    notes.write_text("# Lighthouse log\n\nThe keeper polished the brass telescope before the gale.\n")
    picture = _png(5)
    page.goto(f"{server.url}/library")
    # One file through the file picker, one dropped, one duplicate of a sample.
    page.set_input_files("#file-input", str(notes))
    dropped = base64.b64encode(picture).decode()
    duplicate = base64.b64encode((library["samples"] / "sunset_over_sea.jpg").read_bytes()).decode()
    page.evaluate(
        """([a, b]) => {
            const bytes = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes(a)], 'noise_texture.png', {type: 'image/png'}));
            dt.items.add(new File([bytes(b)], 'sunset_copy.jpg', {type: 'image/jpeg'}));
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        }""",
        [dropped, duplicate],
    )
    items = page.locator("#uploads li.up")
    page.wait_for_function("() => document.querySelectorAll('#uploads li.up').length === 3")
    dup = page.locator("#uploads li.up[data-filename='sunset_copy.jpg']")
    dup.locator("a").wait_for()
    assert "sunset_over_sea.jpg" in dup.inner_text()
    assert dup.locator("a").get_attribute("href") == f"/assets/{library['ids']['sunset_over_sea.jpg']}"
    for name in ("lighthouse_log.md", "noise_texture.png"):
        page.wait_for_selector(f"#uploads li.up[data-filename='{name}'][data-status=queued]")
    # The upload is in the library (queued) before anything processes it.
    listed = httpx.get(f"{server.url}/api/v1/assets", params={"status": "queued"}).json()["assets"]
    assert {"lighthouse_log.md", "noise_texture.png"} <= {a["filename"] for a in listed}
    screenshot(page, "upload-in-progress", tmp_path)

    # `dataflux process`'s own function (the real pipeline, Dagster in this process, on a worker
    # thread) picks them up while the page follows live.
    from dataflux_api.cli.pipeline import run_process

    outcome: dict[str, Any] = {}

    def process() -> None:
        try:
            outcome["report"] = run_process(library["settings"], quiet=True)
        except BaseException as exc:  # reported below, on the test's thread
            outcome["error"] = exc

    for name, value in library["env"].items():
        if name.startswith(("DATAFLUX_", "DAGSTER_")):
            monkeypatch.setenv(name, value)
    worker = threading.Thread(target=process, name="dataflux-process")
    worker.start()
    try:
        for name in ("lighthouse_log.md", "noise_texture.png"):
            page.wait_for_selector(
                f"#uploads li.up[data-filename='{name}'][data-status=completed]", timeout=180_000
            )
    finally:
        worker.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].completed == 2, outcome["report"].failures
    assert page.locator("#uploads li.up[data-status=completed]").count() == 2
    assert page.locator("#uploads li.up[data-status=duplicate]").count() == 1
    assert items.count() == 3
    # Searchable now: the new document is found by its words.
    page.goto(f"{server.url}/?q=brass+telescope")
    assert first_titles(page)[0] == "lighthouse_log.md"


def test_feedback_is_stored_and_reaches_the_analytics(
    page: Any, server: Any, library: dict[str, Any], tmp_path: Path
) -> None:
    from dataflux_pipelines.analytics.facts import collect_facts, publish_facts
    from dataflux_pipelines.catalog import Catalog

    settings = library["settings"]
    before = httpx.get(f"{server.url}/api/v1/stats").json()["feedback"]
    page.goto(f"{server.url}/?q=sourdough+starter")
    hit = page.locator(".results .hit").first
    assert hit.locator(".title").inner_text() == "sourdough_recipe.md"
    hit.locator("button[data-feedback=true]").click()
    hit.locator(".fb-status", has_text="good match").wait_for()
    assert hit.locator("button[data-feedback=true]").get_attribute("aria-pressed") == "true"
    second = page.locator(".results .hit").nth(1)
    if second.count():
        second.locator("button[data-feedback=false]").click()
        second.locator(".fb-status", has_text="miss").wait_for()

    stats = httpx.get(f"{server.url}/api/v1/stats").json()
    assert stats["feedback"] == before + (2 if second.count() else 1)
    rows = Catalog(settings, reader=True).db.open_table("feedback").to_arrow().to_pylist()
    mine = [r for r in rows if r["entity_id"] == library["ids"]["sourdough_recipe.md"]]
    assert mine and mine[-1]["feedback"] is True and mine[-1]["query"] == "sourdough starter"
    assert mine[-1]["type"] == "relevance"

    # Published into the analytics facts (what the analytics asset does), the judgement is counted.
    publish_facts(settings, collect_facts(settings, Catalog(settings, reader=True), []))
    analytics = httpx.get(f"{server.url}/api/v1/stats").json()["analytics"]
    relevance = next(r for r in analytics["feedback_by_type"] if r["type"] == "relevance")
    assert relevance["positive"] >= 1
    page.goto(f"{server.url}/library")
    assert "good" in page.locator(".page-head").inner_text()


def test_with_a_secret_nothing_is_readable_without_a_token_and_read_only_sees_no_writes(
    browser: Any, auth_server: Any, library: dict[str, Any], tmp_path: Path
) -> None:
    from api_support import bearer, token

    asset_id = library["ids"]["coast_and_city.mp4"]
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{auth_server.url}/?q=city")
        assert "/login" in page.url
        body = page.content()
        assert "city_at_night" not in body and "coast_and_city" not in body
        for path in (
            "/api/v1/assets",
            f"/api/v1/assets/{asset_id}",
            f"/api/v1/assets/{asset_id}/download",
            f"/api/v1/assets/{asset_id}/thumbnail",
        ):
            assert page.request.get(f"{auth_server.url}{path}").status == 401, path
        page.goto(f"{auth_server.url}/assets/{asset_id}")
        assert "/login" in page.url and "coast_and_city" not in page.content()

        # A forged token is refused with a reason.
        page.fill("#token", token(["admin"], secret="x" * 40))
        page.click("button[type=submit]")
        assert "not valid" in page.locator(".alert-error").inner_text()

        # Read-only: search and watch, but no upload area and no re-analyse.
        page.fill("#token", token(["search", "assets:read"], subject="viewer"))
        page.click("button[type=submit]")
        page.wait_for_url(f"**/assets/{asset_id}")
        assert page.locator("h1").inner_text() == "coast_and_city.mp4"
        assert page.locator("form.reanalyse").count() == 0
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")  # media by cookie
        page.goto(f"{auth_server.url}/library")
        assert page.locator("#upload-form").count() == 0
        assert page.locator(".who .badge", has_text="read-only").count() == 1
        # Another site cannot use the sign-in cookie to change anything.
        write = page.request.post(
            f"{auth_server.url}/api/v1/feedback",
            data={"type": "relevance", "entity_id": asset_id, "feedback": True},
            headers={"Origin": "https://evil.example"},
        )
        assert write.status == 403
        page.click("text=Sign out")
        page.wait_for_url("**/login*")
        assert page.request.get(f"{auth_server.url}/api/v1/assets").status == 401

        # A writer sees the upload area and the re-analyse action, and the page sends its token.
        page.goto(f"{auth_server.url}/login?next=/library")
        page.fill("#token", token(["search", "assets:read", "assets:write"], subject="editor"))
        page.click("button[type=submit]")
        page.wait_for_url("**/library")
        assert page.locator("#upload-form").count() == 1
        page.goto(f"{auth_server.url}/?q=sourdough+starter")
        page.locator(".results .hit button[data-feedback=true]").first.click()
        page.locator(".results .hit .fb-status", has_text="good match").first.wait_for()
        page.goto(f"{auth_server.url}/assets/{asset_id}")
        assert page.locator("form.reanalyse").count() == 1
    finally:
        context.close()
    assert httpx.get(f"{auth_server.url}/api/v1/stats", headers=bearer(["assets:read"])).status_code == 200


def test_phone_width_and_keyboard(browser: Any, server: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/?q=city+at+night")
        # Nothing overflows sideways on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "phone-search", tmp_path, full_page=False)
        # Keyboard: the first Tab reaches the skip link, and it moves focus to the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        inside = page.evaluate("document.getElementById('main').contains(document.activeElement)")
        assert inside
        # Feedback buttons have names a screen reader can read.
        labels = page.locator(".hit button[data-feedback] svg").evaluate_all(
            "els => els.map(e => e.getAttribute('aria-label'))"
        )
        assert labels and all(labels)
    finally:
        context.close()
