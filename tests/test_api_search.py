"""Search and similar over HTTP: the REST layer in front of the real query service and real Lance tables."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from litestar.testing import TestClient
from query_corpus import CORPUS, build_home, settings_for, write_vision

from dataflux_api.app import create_app
from dataflux_api.service import DataFlux
from dataflux_pipelines.analytics.facts import read_query_events
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.settings import Settings

BY_NAME = {d.name: d for d in CORPUS}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, ModelRegistry]:
    """The query tests' corpus in a private home, with vision vectors for `similar`."""
    home = tmp_path_factory.mktemp("api-search")
    registry = ModelRegistry(settings_for(home / "registry"))
    settings = build_home(home / "corpus", registry)
    beach, city, report = BY_NAME["beach.mp4"], BY_NAME["city.mp4"], BY_NAME["report.pdf"]
    rng = np.random.default_rng(0)
    base = rng.normal(size=8)
    write_vision(
        settings,
        [(beach, 0, base), (city, 0, base + rng.normal(scale=0.05, size=8)), (report, 0, rng.normal(size=8))],
    )
    return settings, registry


@pytest.fixture(scope="module")
def client(corpus: tuple[Settings, ModelRegistry]) -> Iterator[TestClient]:
    settings, registry = corpus
    service = DataFlux(settings, registry=registry)
    with TestClient(
        app=create_app(settings, service=service),
        base_url="http://127.0.0.1:8000",
        raise_server_exceptions=False,
    ) as c:
        yield c


def result_names(body: dict) -> list[str]:
    by_id = {d.id: d.name for d in CORPUS}
    return [by_id.get(r["id"], r["id"]) for r in body["results"]]


def test_a_paraphrase_finds_the_document_by_meaning_and_is_recorded_for_analytics(
    client: TestClient, corpus: tuple[Settings, ModelRegistry]
) -> None:
    response = client.post("/api/v1/search", json={"query": "company earnings increased"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert result_names(body)[0] == "report.pdf"
    assert body["results"][0]["segments"][0]["page"] == 1
    assert set(body) >= {"results", "total", "took_ms", "offset", "limit", "understood"}
    events = read_query_events(corpus[0]).to_pylist()
    assert any(
        e["query"] == "company earnings increased" and e["result_count"] == body["total"] for e in events
    )


def test_an_exact_phrase_matches_only_rows_containing_it(client: TestClient) -> None:
    body = client.post("/api/v1/search", json={"query": '"red car"'}).json()
    assert result_names(body) == ["neighbour.txt"]
    assert any("red car" in h.lower() for h in body["results"][0]["highlights"])


def test_search_filters_and_limits_apply(client: TestClient) -> None:
    videos = client.post("/api/v1/search", json={"query": "beach", "media_types": ["video"]}).json()
    assert videos["results"] and {r["type"] for r in videos["results"]} == {"video"}
    clamped = client.post("/api/v1/search", json={"query": "car", "limit": 5000}).json()
    assert clamped["limit"] == 100


@pytest.mark.parametrize(
    "body",
    [
        {"query": "car", "filters": {"mime_types": ["text/plain' OR 1=1 --"]}},
        {"query": "car", "filters": {"status": "completed' OR '1'='1"}},
        {"query": "x' OR 1=1 --"},
        {"query": "MATCH (n) DETACH DELETE n"},
    ],
)
def test_injection_attempts_in_a_search_match_literally_or_are_rejected(
    client: TestClient, body: dict
) -> None:
    response = client.post("/api/v1/search", json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        # Nothing in the corpus contains these strings, and a filter that leaked would match everything.
        assert len(response.json()["results"]) < len(CORPUS)
    else:
        assert response.json()["error"]["field"]


def test_invalid_search_requests_name_the_field(client: TestClient) -> None:
    empty = client.post("/api/v1/search", json={"query": "  "})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "query"
    bad_type = client.post("/api/v1/search", json={"query": "car", "media_types": ["hologram"]})
    assert bad_type.status_code == 422 and bad_type.json()["error"]["field"] == "media_types"
    unknown = client.post("/api/v1/search", json={"query": "car", "sort": "newest"})
    assert unknown.status_code == 422
    wrong = client.post("/api/v1/search", json={"query": 5})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "query"
    bad_collection = client.post(
        "/api/v1/search", json={"query": "car", "filters": {"collection_id": "nope"}}
    )
    assert bad_collection.status_code == 422
    assert bad_collection.json()["error"]["field"] == "filters.collection_id"


def test_similar_finds_the_near_asset_and_validates_its_input(client: TestClient) -> None:
    beach, city = BY_NAME["beach.mp4"], BY_NAME["city.mp4"]
    response = client.post("/api/v1/similar", json={"entity_id": beach.id, "threshold": 0.9})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["results"]] == [city.id]
    missing = client.post("/api/v1/similar", json={"entity_id": "00000000-0000-4000-8000-000000000000"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "entity_id"
    malformed = client.post("/api/v1/similar", json={"entity_id": "beach"})
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "entity_id"
    bad_threshold = client.post("/api/v1/similar", json={"entity_id": beach.id, "threshold": 2})
    assert bad_threshold.status_code == 422 and bad_threshold.json()["error"]["field"] == "threshold"
