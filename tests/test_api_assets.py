"""The asset routes over HTTP against real stores: upload, list, detail, delete, re-analyse, media."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import api_client, make_settings, png_bytes, seed_processed_asset
from litestar.testing import TestClient

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash, sha256_chunks
from dataflux_pipelines.landing import CONTROL_PREFIX
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, upload_max_bytes=64 * 1024)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


def upload(client: TestClient, content: bytes, name: str = "photo.png", **form: str):
    return client.post("/api/v1/assets", files={"file": (name, content, "image/png")}, data=form)


def test_an_upload_is_landed_queued_and_answered_with_id_status_and_eta(
    client: TestClient, settings: Settings
) -> None:
    content = png_bytes(3)
    response = upload(client, content, context="beach at dusk", priority="2")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == asset_id_for_hash(sha256_chunks([content]))
    assert body["status"] == "queued"
    assert body["eta_seconds"] >= 1
    assert response.headers["location"] == f"/api/v1/assets/{body['id']}"
    row = Catalog(settings).get_asset(body["id"])
    assert row["context"] == "beach at dusk" and row["priority"] == 2
    assert open_object_store(settings).get_bytes(row["landing_key"]) == content


def test_uploading_the_same_bytes_twice_answers_409_with_the_existing_id(client: TestClient) -> None:
    first = upload(client, png_bytes(4), name="a.png").json()
    second = upload(client, png_bytes(4), name="renamed.png")
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "duplicate_asset"
    assert error["existing_id"] == first["id"]
    assert first["id"] in error["message"]


def test_an_upload_over_the_limit_is_refused_with_413(client: TestClient, settings: Settings) -> None:
    too_big = b"\x00" * (settings.upload_max_bytes + 10)
    response = upload(client, too_big, name="big.bin")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert not list(open_object_store(settings).list(layout.LANDING_PREFIX))


def test_a_body_announced_larger_than_the_limit_is_refused_before_it_is_read(
    client: TestClient, settings: Settings
) -> None:
    # Far beyond file limit + form overhead: Litestar checks Content-Length before reading anything.
    too_big = b"\x00" * (settings.upload_max_bytes + 2 * 1024 * 1024)
    response = upload(client, too_big, name="huge.bin")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "the request body exceeds the size limit of this route",
        "field": "file",
        "status": 413,
    }


def test_an_empty_file_is_rejected_with_reason_empty_file(client: TestClient) -> None:
    response = upload(client, b"", name="empty.png")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_file"
    assert response.json()["error"]["field"] == "file"


def test_upload_form_fields_are_validated_and_named(client: TestClient) -> None:
    bad_priority = upload(client, png_bytes(5), priority="11")
    assert bad_priority.status_code == 422
    assert bad_priority.json()["error"]["field"] == "priority"
    unknown = upload(client, png_bytes(5), collection_id="8a0ee0a5-5bd4-4f9a-9d8c-000000000000")
    assert unknown.status_code == 422
    assert unknown.json()["error"] == {
        "code": "unknown_collection",
        "message": "no collection with id 8a0ee0a5-5bd4-4f9a-9d8c-000000000000",
        "field": "collection_id",
        "status": 422,
    }
    missing = client.post("/api/v1/assets", files={"other": ("x.png", b"123", "image/png")})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "file"


def test_the_list_pages_newest_first_and_clamps_the_page_size(client: TestClient) -> None:
    ids = [upload(client, png_bytes(100 + i), name=f"p{i}.png").json()["id"] for i in range(5)]
    page1 = client.get("/api/v1/assets", params={"limit": 2}).json()
    page3 = client.get("/api/v1/assets", params={"limit": 2, "page": 3}).json()
    assert page1["pagination"] == {"page": 1, "limit": 2, "total": 5, "pages": 3}
    assert [a["id"] for a in page1["assets"]] == ids[::-1][:2]
    assert [a["id"] for a in page3["assets"]] == ids[:1]
    clamped = client.get("/api/v1/assets", params={"limit": 5000}).json()
    assert clamped["pagination"]["limit"] == 100
    assert len(clamped["assets"]) == 5
    assert client.get("/api/v1/assets", params={"page": 0}).json()["error"]["field"] == "page"
    assert client.get("/api/v1/assets", params={"page": "two"}).status_code == 422


def test_the_list_filters_by_status_mime_media_type_and_collection(
    client: TestClient, settings: Settings
) -> None:
    upload(client, png_bytes(7), name="queued.png")
    collection = client.post("/api/v1/collections", json={"name": "Holidays"}).json()
    done = seed_processed_asset(settings, content=b"video-bytes-1", collection_id=collection["id"])
    by_status = client.get("/api/v1/assets", params={"status": "completed"}).json()
    assert [a["id"] for a in by_status["assets"]] == [done["id"]]
    assert client.get("/api/v1/assets", params={"mime_type": "video/mp4"}).json()["pagination"]["total"] == 1
    assert client.get("/api/v1/assets", params={"media_type": "video"}).json()["pagination"]["total"] == 1
    in_collection = client.get("/api/v1/assets", params={"collection_id": collection["id"]}).json()
    assert [a["id"] for a in in_collection["assets"]] == [done["id"]]
    assert client.get("/api/v1/assets", params={"status": "queued"}).json()["pagination"]["total"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "completed' OR 1=1 --"}, "status"),
        ({"media_type": "video OR true"}, "media_type"),
        ({"collection_id": "x' OR '1'='1"}, "collection_id"),
    ],
)
def test_filter_injection_attempts_are_rejected_naming_the_field(
    client: TestClient, settings: Settings, params: dict[str, str], field: str
) -> None:
    seed_processed_asset(settings, content=b"video-bytes-2")
    response = client.get("/api/v1/assets", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_a_mime_type_with_quotes_matches_literally(client: TestClient, settings: Settings) -> None:
    seed_processed_asset(settings, content=b"video-bytes-3")
    for attempt in [
        "video/mp4' OR '1'='1",
        "x' OR mime_type IS NOT NULL OR 'a'='a",
        "';DROP TABLE assets;--",
    ]:
        response = client.get("/api/v1/assets", params={"mime_type": attempt})
        assert response.status_code == 200
        assert response.json()["pagination"]["total"] == 0
    assert client.get("/api/v1/assets").json()["pagination"]["total"] == 1


def test_the_detail_has_segments_and_their_media_urls(client: TestClient, settings: Settings) -> None:
    seeded = seed_processed_asset(settings, content=b"video-bytes-4", segments=3)
    response = client.get(f"/api/v1/assets/{seeded['id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["status"] == "completed" and detail["processing_status"] == "completed"
    assert detail["metadata"] == {"codec": "h264"}
    assert [s["id"] for s in detail["segments"]] == seeded["segments"]
    assert [s["start_time"] for s in detail["segments"]] == [0.0, 1.0, 2.0]
    first = detail["segments"][0]
    assert first["keyframe_url"] == f"/api/v1/segments/{first['id']}/keyframe"
    assert first["thumbnail_url"] == f"/api/v1/segments/{first['id']}/thumbnail"
    assert detail["thumbnail_url"] == f"/api/v1/assets/{seeded['id']}/thumbnail"
    assert client.get(first["keyframe_url"]).content == open_object_store(settings).get_bytes(
        layout.derived_key(seeded["id"], "keyframes/00000.jpg")
    )


def test_unknown_and_malformed_asset_ids_answer_404_and_422(client: TestClient) -> None:
    missing = client.get("/api/v1/assets/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "asset_not_found"
    malformed = client.get("/api/v1/assets/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["error"] == {
        "code": "invalid_id",
        "message": "id 'not-a-uuid' is not a UUID",
        "field": "id",
        "status": 422,
    }


def test_download_streams_the_original_and_thumbnail_the_image(
    client: TestClient, settings: Settings
) -> None:
    content = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 50
    seeded = seed_processed_asset(settings, content=content, filename="holiday clip.mp4")
    download = client.get(f"/api/v1/assets/{seeded['id']}/download")
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"].startswith("video/mp4")
    assert download.headers["content-disposition"] == 'attachment; filename="holiday clip.mp4"'
    thumb = client.get(f"/api/v1/assets/{seeded['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")


def test_a_queued_upload_downloads_from_landing_but_has_no_thumbnail_yet(client: TestClient) -> None:
    content = png_bytes(8)
    asset_id = upload(client, content).json()["id"]
    assert client.get(f"/api/v1/assets/{asset_id}/download").content == content
    thumb = client.get(f"/api/v1/assets/{asset_id}/thumbnail")
    assert thumb.status_code == 404
    assert thumb.json()["error"]["code"] == "media_not_found"
    assert "queued" in thumb.json()["error"]["message"]


def test_delete_leaves_nothing_behind_in_any_store(client: TestClient, settings: Settings) -> None:
    seeded = seed_processed_asset(settings, content=b"video-bytes-5")
    other = seed_processed_asset(settings, content=b"video-bytes-6")
    queued = upload(client, png_bytes(9)).json()["id"]
    for asset_id in (seeded["id"], queued):
        response = client.delete(f"/api/v1/assets/{asset_id}")
        assert response.status_code == 204, response.text
    catalog = Catalog(settings)
    store = open_object_store(settings)
    assert catalog.get_asset(seeded["id"]) is None and catalog.get_asset(queued) is None
    assert catalog.segments_for(seeded["id"]) == []
    assert list(store.list(layout.asset_prefix(seeded["id"]))) == []
    assert [i.key for i in store.list(layout.LANDING_PREFIX)] == []
    vectors = catalog.db.open_table(layout.vector_table_name("vision", "test space"))
    assert vectors.count_rows(f"asset_id = '{seeded['id']}'") == 0
    assert store.head(f"control/tombstones/{seeded['id']}.json") is not None
    # The other asset is untouched.
    assert len(catalog.segments_for(other["id"])) == 2
    assert vectors.count_rows(f"asset_id = '{other['id']}'") == 2
    assert client.get(f"/api/v1/assets/{seeded['id']}").status_code == 404
    assert client.delete(f"/api/v1/assets/{seeded['id']}").status_code == 404


def test_reanalysis_is_accepted_and_writes_a_control_request(client: TestClient, settings: Settings) -> None:
    seeded = seed_processed_asset(settings, content=b"video-bytes-7")
    response = client.post(f"/api/v1/assets/{seeded['id']}/analyze", json={"force": True, "priority": 2})
    assert response.status_code == 202
    body = response.json()
    assert body["id"] == seeded["id"] and body["force"] is True and body["priority"] == 2
    keys = [i.key for i in open_object_store(settings).list(CONTROL_PREFIX)]
    assert keys == [body["request_key"]]
    without_body = client.post(f"/api/v1/assets/{seeded['id']}/analyze")
    assert without_body.status_code == 202 and without_body.json()["priority"] == 5
    assert client.post(f"/api/v1/assets/{seeded['id']}/analyze", json={"priority": 0}).status_code == 422
    missing = client.post("/api/v1/assets/00000000-0000-4000-8000-000000000000/analyze", json={})
    assert missing.status_code == 404
