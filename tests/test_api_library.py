"""Segments, collections, feedback, relationships, stats, health, metrics, OpenAPI and the error shape over HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import api_client, make_settings, png_bytes, seed_processed_asset
from litestar.testing import TestClient
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.settings import Settings

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


def test_a_segment_is_served_with_features_and_media_urls(client: TestClient, settings: Settings) -> None:
    seeded = seed_processed_asset(settings, content=b"segment-video")
    segment_id = seeded["segments"][1]
    body = client.get(f"/api/v1/segments/{segment_id}").json()
    assert body["asset_id"] == seeded["id"]
    assert (body["sequence_number"], body["start_time"], body["end_time"]) == (1, 1.0, 2.0)
    assert body["visual_features"] == {"brightness": 0.6}
    assert body["concepts"] == ["sunset"]
    thumb = client.get(body["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content == png_bytes(21)
    assert client.get(f"/api/v1/segments/{UNKNOWN}").json()["error"]["code"] == "segment_not_found"
    assert client.get(f"/api/v1/segments/{UNKNOWN}/keyframe").status_code == 404
    assert client.get("/api/v1/segments/1 OR 1=1").status_code == 422


def test_collections_are_created_once_and_listed_with_asset_counts(
    client: TestClient, settings: Settings
) -> None:
    created = client.post("/api/v1/collections", json={"name": "Holidays", "description": "summer 2026"})
    assert created.status_code == 201
    collection = created.json()
    assert collection["asset_count"] == 0 and collection["auto_generated"] is False
    seed_processed_asset(settings, content=b"holiday-1", collection_id=collection["id"])
    seed_processed_asset(settings, content=b"holiday-2", collection_id=collection["id"])
    client.post("/api/v1/collections", json={"name": "Empty"})
    listed = client.get("/api/v1/collections").json()
    assert [(c["name"], c["asset_count"]) for c in listed] == [("Empty", 0), ("Holidays", 2)]
    again = client.post("/api/v1/collections", json={"name": "Holidays"})
    assert again.status_code == 409
    assert again.json()["error"]["existing_id"] == collection["id"]
    assert client.post("/api/v1/collections", json={"name": ""}).json()["error"]["field"] == "name"
    assert client.post("/api/v1/collections", json={}).json()["error"]["field"] == "name"


def test_feedback_is_stored_in_the_feedback_table(client: TestClient, settings: Settings) -> None:
    seeded = seed_processed_asset(settings, content=b"feedback-video")
    response = client.post(
        "/api/v1/feedback",
        json={
            "type": "relevance",
            "entity_id": seeded["id"],
            "feedback": True,
            "query": "sunset",
            "details": "spot on",
        },
    )
    assert response.status_code == 201
    rows = Catalog(settings).db.open_table(layout.FEEDBACK_TABLE).to_arrow().to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["id"], row["entity_id"], row["type"], row["feedback"]) == (
        response.json()["id"],
        seeded["id"],
        "relevance",
        True,
    )
    assert row["query"] == "sunset" and row["details"] == "spot on"
    bad_type = client.post(
        "/api/v1/feedback", json={"type": "vibes", "entity_id": seeded["id"], "feedback": True}
    )
    assert bad_type.status_code == 422 and bad_type.json()["error"]["field"] == "type"
    unknown = client.post(
        "/api/v1/feedback", json={"type": "quality", "entity_id": UNKNOWN, "feedback": False}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "entity_id"


def test_relationships_are_503_until_a_graph_is_published_and_then_follow_it(
    client: TestClient, settings: Settings
) -> None:
    seeded = seed_processed_asset(settings, content=b"graph-video", segments=2)
    before = client.get("/api/v1/relationships", params={"entity_id": seeded["id"]})
    assert before.status_code == 503
    assert before.json()["error"]["code"] == "graph_unavailable"
    publish_graph(settings, Catalog(settings))
    after = client.get("/api/v1/relationships", params={"entity_id": seeded["id"], "types": "HAS_SEGMENT"})
    assert after.status_code == 200, after.text
    body = after.json()
    assert {n["id"] for n in body["nodes"]} == {seeded["id"], *seeded["segments"]}
    assert {e["type"] for e in body["edges"]} == {"HAS_SEGMENT"}
    client.delete(f"/api/v1/assets/{seeded['id']}")
    gone = client.get("/api/v1/relationships", params={"entity_id": seeded["id"]})
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"entity_id": UNKNOWN, "depth": 4}, "depth"),
        ({"entity_id": UNKNOWN, "depth": 0}, "depth"),
        ({"entity_id": UNKNOWN, "types": "HAS_SEGMENT,DELETE_ALL"}, "types"),
        ({"entity_id": "x'}) MATCH (n) DETACH DELETE n //"}, "entity_id"),
        ({"entity_id": UNKNOWN, "depth": "deep"}, "depth"),
    ],
)
def test_relationship_arguments_are_validated_before_the_graph_is_touched(
    client: TestClient, params: dict[str, object], field: str
) -> None:
    # No graph is published: only validation can answer 422 here instead of 503.
    response = client.get("/api/v1/relationships", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_stats_count_assets_and_segments_from_the_catalog(client: TestClient, settings: Settings) -> None:
    seed_processed_asset(settings, content=b"stats-video", segments=3)
    client.post("/api/v1/assets", files={"file": ("s.png", png_bytes(2), "image/png")})
    stats = client.get("/api/v1/stats").json()
    assert stats["assets"]["total"] == 2
    assert stats["assets"]["by_status"] == {"completed": 1, "queued": 1}
    assert stats["segments"] == {"total": 3, "by_type": {"shot": 3}}
    assert stats["queue_depth"] == 1
    # Nothing published the analytics facts in this home; the reply says so instead of inventing rollups.
    assert stats["analytics"]["available"] is False
    assert "not been published" in stats["analytics"]["reason"]


def test_health_reports_stores_models_and_degraded_reasons(client: TestClient, settings: Settings) -> None:
    body = client.get("/health").json()
    assert body["stores"]["lance"]["ok"] and body["stores"]["object_store"]["ok"]
    assert body["device"] == "cpu"
    assert set(body["models"]["profiles"]) >= {"clip", "text"}
    # No graph has been published in a fresh home: that is reported, not hidden.
    assert body["status"] == "degraded"
    assert any("graph" in reason for reason in body["degraded"])
    publish_graph(settings, Catalog(settings))
    assert client.get("/health").json()["stores"]["graph"]["published"] is True


def test_metrics_count_requests_by_route_and_report_library_gauges(
    client: TestClient, settings: Settings
) -> None:
    seed_processed_asset(settings, content=b"metrics-video", segments=2)
    client.post("/api/v1/assets", files={"file": ("m.png", png_bytes(3), "image/png")})
    client.get(f"/api/v1/assets/{UNKNOWN}")
    client.get(f"/api/v1/assets/{UNKNOWN}")
    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    route = "/api/v1/assets/{asset_id}"
    assert (
        samples[("dataflux_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))]
        == 2
    )
    assert (
        samples[
            (
                "dataflux_http_requests_total",
                (("method", "POST"), ("route", "/api/v1/assets"), ("status", "201")),
            )
        ]
        == 1
    )
    assert (
        samples[("dataflux_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))] == 2
    )
    assert samples[("dataflux_assets", (("status", "completed"),))] == 1
    assert samples[("dataflux_assets", (("status", "queued"),))] == 1
    assert samples[("dataflux_segments", (("segment_type", "shot"),))] == 2
    assert samples[("dataflux_queue_depth", ())] == 1


def test_the_openapi_document_validates_and_covers_the_seed_paths(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    validate(document)
    paths = set(document["paths"])
    for path in (
        "/api/v1/assets",
        "/api/v1/assets/{asset_id}",
        "/api/v1/assets/{asset_id}/analyze",
        "/api/v1/search",
        "/api/v1/similar",
        "/api/v1/segments/{segment_id}",
        "/api/v1/collections",
        "/api/v1/feedback",
        "/api/v1/relationships",
        "/api/v1/stats",
        "/health",
        "/metrics",
    ):
        assert path in paths, path
    upload = document["paths"]["/api/v1/assets"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "409", "413"} <= set(upload["responses"])
    assert "BearerToken" in document["components"]["securitySchemes"]


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"code", "message", "field", "status"}
    wrong_method = client.put("/api/v1/collections", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    bad_json = client.post(
        "/api/v1/collections", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code in (400, 422)
    assert bad_json.json()["error"]["status"] == bad_json.status_code
    huge = client.post("/api/v1/collections", json={"name": "x" * (2 * 1024 * 1024)})
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large" and huge.json()["error"]["field"] is None


def test_a_broken_store_answers_500_without_a_traceback_and_the_server_carries_on(
    client: TestClient, settings: Settings
) -> None:
    seed_processed_asset(settings, content=b"broken-video")
    # Destroy the segment table's data files under the running app: a real store fault.
    shutil.rmtree(Path(settings.lance_uri) / f"{layout.SEGMENTS_TABLE}.lance" / "data")
    seeded_id = client.get("/api/v1/assets").json()["assets"][0]["id"]
    response = client.get(f"/api/v1/assets/{seeded_id}")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "an internal error occurred; see the server log",
            "field": None,
            "status": 500,
        }
    }
    assert "Traceback" not in response.text
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/collections").status_code == 200
