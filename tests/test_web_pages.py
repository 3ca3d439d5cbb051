"""The web UI's pages, sign-in and media delivery over HTTP (Litestar's test client; no browser)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_support import SECRET, api_client, make_settings, seed_processed_asset, token

from dataflux_api.media_http import ByteRange, Unsatisfiable, parse_range
from dataflux_api.policy import TOKEN_COOKIE as COOKIE_NAME
from dataflux_api.web import view

CONTENT = bytes(range(256)) * 40  # 10,240 bytes whose every offset is recognisable


@pytest.fixture
def seeded(tmp_path: Path):
    settings = make_settings(tmp_path)
    asset = seed_processed_asset(settings, content=CONTENT, filename="harbour <b>tour</b>.mp4", segments=3)
    return settings, asset


def test_parse_range_covers_the_forms_browsers_send() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-", 100) == ByteRange(0, 99)
    assert parse_range("bytes=10-19", 100) == ByteRange(10, 19)
    assert parse_range("bytes=90-500", 100) == ByteRange(90, 99)
    assert parse_range("bytes=-30", 100) == ByteRange(70, 99)
    assert parse_range("bytes=-300", 100) == ByteRange(0, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # multi-range: the whole object
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=9-3", 100) is None
    for bad in ("bytes=100-", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)


def test_media_is_served_in_ranges_with_validators(seeded) -> None:
    settings, asset = seeded
    url = f"/api/v1/assets/{asset['id']}/download"
    with api_client(settings) as client:
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == CONTENT
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-type"] == "video/mp4"
        etag = whole.headers["etag"]

        part = client.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(CONTENT)}"
        assert part.headers["content-length"] == "1000"
        assert part.content == CONTENT[1000:2000]

        tail = client.get(url, headers={"Range": "bytes=-17"})
        assert tail.status_code == 206 and tail.content == CONTENT[-17:]
        rest = client.get(url, headers={"Range": "bytes=10000-"})
        assert rest.status_code == 206 and rest.content == CONTENT[10000:]

        beyond = client.get(url, headers={"Range": f"bytes={len(CONTENT)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(CONTENT)}"

        # If-Range: a matching validator gets the range, a stale one the whole (changed) object.
        fresh = client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert fresh.status_code == 206 and fresh.content == CONTENT[:10]
        stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == CONTENT


def test_thumbnails_and_keyframes_are_cacheable_and_revalidate(seeded) -> None:
    settings, asset = seeded
    with api_client(settings) as client:
        for url in (
            f"/api/v1/assets/{asset['id']}/thumbnail",
            f"/api/v1/segments/{asset['segments'][0]}/keyframe",
            f"/api/v1/segments/{asset['segments'][0]}/thumbnail",
        ):
            first = client.get(url)
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("image/")
            assert "max-age=" in first.headers["cache-control"] and first.headers["last-modified"]
            again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""


def test_pages_render_from_the_service_and_errors_are_pages(seeded) -> None:
    settings, asset = seeded
    with api_client(settings) as client:
        library = client.get("/library")
        assert library.status_code == 200 and library.headers["content-type"].startswith("text/html")
        # The stored name is shown escaped: markup in a filename is text, never HTML.
        assert "harbour &lt;b&gt;tour&lt;/b&gt;.mp4" in library.text and "<b>tour</b>" not in library.text
        assert 'id="upload-form"' in library.text  # open mode on loopback: everyone may write
        assert "default-src 'self'" in library.headers["content-security-policy"]

        page = client.get(f"/assets/{asset['id']}?t=1.5")
        assert page.status_code == 200
        assert f'src="/api/v1/assets/{asset["id"]}/download#t=1.50"' in page.text
        assert page.text.count('class="seg"') == 3 and 'data-seek="2.0"' in page.text
        assert "sunset" in page.text  # the segments' concepts

        failed = client.get("/library?status=failed")
        assert failed.status_code == 200 and "No failed" in failed.text

        missing = client.get("/assets/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404 and "asset_not_found" in missing.text
        assert missing.headers["content-type"].startswith("text/html")
        assert client.get("/assets/not-a-uuid").status_code == 422
        assert client.get("/?q=tour&after=2026-13-40").status_code == 422

        recent = client.get("/")
        assert recent.status_code == 200 and 'name="q"' in recent.text and "Recently added" in recent.text
        static = client.get("/static/app.js")
        assert static.status_code == 200 and "max-age" in static.headers["cache-control"]


def test_a_failed_asset_page_names_its_reason(tmp_path: Path) -> None:
    from dataflux_pipelines.catalog import Catalog

    settings = make_settings(tmp_path)
    asset = seed_processed_asset(settings, content=b"x" * 64, filename="broken.mp4", segments=0)
    Catalog(settings).upsert_assets(
        [
            {
                "id": asset["id"],
                "status": "failed",
                "reason_code": "corrupt_media",
                "reason_message": "no decodable video stream",
            }
        ]
    )
    with api_client(settings) as client:
        page = client.get(f"/assets/{asset['id']}")
        assert page.status_code == 200
        assert "corrupt_media" in page.text and "no decodable video stream" in page.text


def test_with_a_secret_pages_ask_for_a_token_and_other_sites_cannot_use_the_cookie(seeded) -> None:
    settings, asset = seeded
    settings = dataclasses.replace(settings, jwt_secret=SECRET)
    with api_client(settings) as client:
        first = client.get("/library", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/login?reason=missing_token&next=%2Flibrary"
        assert "harbour" not in first.text
        assert client.get(f"/api/v1/assets/{asset['id']}/download").status_code == 401
        assert client.get("/login").status_code == 200

        # A token from another site's form is refused; a foreign `next` is not followed.
        reader = token(["search", "assets:read"], subject="viewer")
        cross = client.post(
            "/login", data={"token": reader, "next": "/"}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403 and COOKIE_NAME not in cross.cookies  # the request policy
        signed = client.post(
            "/login", data={"token": reader, "next": "//evil.example/"}, follow_redirects=False
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()

        library = client.get("/library")
        assert library.status_code == 200 and "harbour" in library.text
        assert 'id="upload-form"' not in library.text and "read-only" in library.text
        assert f'content="{reader}"' in library.text  # the script's bearer token for API calls
        assert client.get(f"/api/v1/assets/{asset['id']}/download").status_code == 200
        # Another site cannot use the cookie to change anything (the request policy's Origin rule).
        write = client.post(
            "/api/v1/feedback",
            json={"type": "relevance", "entity_id": asset["id"], "feedback": True},
            headers={"Origin": "https://evil.example"},
        )
        assert write.status_code == 403

        writer = token(["search", "assets:read", "assets:write"], subject="editor")
        client.post("/login", data={"token": writer, "next": "/library"})
        assert 'id="upload-form"' in client.get("/library").text

        client.cookies.set(COOKIE_NAME, token(["admin"], secret="y" * 40))
        forged = client.get("/library", follow_redirects=False)
        assert forged.status_code == 303 and "reason=invalid_token" in forged.headers["location"]


def test_view_helpers() -> None:
    assert view.fmt_time(0) == "0:00"
    assert view.fmt_time(1.75) == "0:01.8"
    assert view.fmt_time(65.0) == "1:05"
    assert view.fmt_time(3725) == "1:02:05"
    assert str(view.mark_terms("City <lights> at night", "city night")) == (
        "<mark>City</mark> &lt;lights&gt; at <mark>night</mark>"
    )
    # Scores are calibrated relevance: weak hits fall under the API's own floor, whatever the best score.
    hits = [SimpleNamespace(score=s) for s in (1.0, 0.6, 0.36, 0.34, 0.2)]
    strong, weak = view.split_weak(hits, floor=0.35)
    assert [h.score for h in strong] == [1.0, 0.6, 0.36] and [h.score for h in weak] == [0.34, 0.2]
    assert view.split_weak([SimpleNamespace(score=0.3)])[0] == []  # the default is the API's floor
    assert view.moment_url("a", 12.345) == "/assets/a?t=12.35#t=12.35"
    assert view.moment_url("a", None, 3) == "/assets/a#page-3"
    for bad in ("//evil.example", "https://evil.example", "\\\\evil", None, ""):
        assert view.safe_next(bad) == "/"
    assert view.safe_next("/assets/x?t=1") == "/assets/x?t=1"
    lanes = view.timeline_lanes(
        "video", [{"segment_type": "audio"}, {"segment_type": "shot"}, {"segment_type": "shot"}]
    )
    assert [(lane["title"], len(lane["segments"])) for lane in lanes] == [("Shots", 2), ("Sound", 1)]
