"""The query service's latency paths keep its answers: cached query vectors, rows read by row id, overlap."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from query_corpus import CORPUS, asset_id, build_home, settings_for, write_vision

from dataflux_api.query import SearchEngine, SearchRequest
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import segment_id_for
from dataflux_pipelines.models.registry import ModelRegistry

BY_NAME = {d.name: d for d in CORPUS}
QUERIES = ["red car", "sourdough bread", "waves at the beach", "machine learning", "budget"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return ModelRegistry(settings_for(tmp_path_factory.mktemp("registry-home")))


@pytest.fixture(scope="module")
def home(tmp_path_factory, registry):
    return build_home(tmp_path_factory.mktemp("corpus"), registry)


def answer(response) -> list[tuple[str, float, list[tuple[str, float | None, int | None]]]]:
    return [(r.id, r.score, [(s.id, s.start_time, s.page) for s in r.segments]) for r in response.results]


def test_a_later_page_of_the_same_text_reuses_its_query_vector_and_matches_a_fresh_engine(home, registry):
    engine = SearchEngine(home, registry, cache_size=0)
    engine.search(SearchRequest(query="a red car", limit=2))
    second = engine.search(SearchRequest(query="a red car", limit=2, offset=2))
    assert (engine.query_vectors.misses, engine.query_vectors.hits) == (1, 1)
    fresh = SearchEngine(home, registry, cache_size=0).search(
        SearchRequest(query="a red car", limit=2, offset=2)
    )
    assert second.results and answer(second) == answer(fresh)


def test_segment_rows_read_by_row_id_carry_their_own_text_times_and_pages(home, registry):
    response = SearchEngine(home, registry).search(SearchRequest(query="sandcastle", limit=5))
    beach = next(r for r in response.results if r.id == BY_NAME["beach.mp4"].id)
    hit = next(s for s in beach.segments if s.id == BY_NAME["beach.mp4"].segment_id(1))
    assert (hit.start_time, hit.end_time) == (5.0, 12.0)
    assert "sandcastle" in (hit.text_snippet or "")
    assert beach.metadata["filename"] == "beach.mp4"


def test_concurrent_requests_on_one_engine_answer_as_sequential_ones_do(home, registry):
    engine = SearchEngine(home, registry, cache_size=0)
    sequential = [answer(engine.search(SearchRequest(query=q))) for q in QUERIES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda q: answer(engine.search(SearchRequest(query=q))), QUERIES * 2))
    assert concurrent == sequential * 2
    assert all(sequential), "every query should find something in the corpus"


def test_a_vision_vector_whose_segment_row_is_gone_is_not_a_similar_result(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    beach, city, report = BY_NAME["beach.mp4"], BY_NAME["city.mp4"], BY_NAME["report.pdf"]
    base = np.random.default_rng(1).normal(size=8)
    # city.mp4 has one segment: its segment 7 is a vector left behind by an earlier analysis.
    write_vision(settings, [(beach, 0, base), (city, 7, base + 0.01), (report, 1, base + 0.02)])
    response = SearchEngine(settings, registry).similar(beach.id, threshold=0.9, limit=10)
    assert [r.id for r in response.results] == [report.id]
    assert [s.id for s in response.results[0].segments] == [report.segment_id(1)]
    assert response.total == 1


def test_asset_rows_reused_between_requests_follow_a_new_version_of_the_assets_table(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    engine = SearchEngine(settings, registry, cache_size=0)
    beach = BY_NAME["beach.mp4"]

    def shown() -> dict:
        response = engine.search(SearchRequest(query="sandcastle", limit=5))
        return next(r for r in response.results if r.id == beach.id).metadata

    assert shown()["context"] != "renamed on the shelf"
    assert shown() == shown()  # the second request reads the asset row it read before
    Catalog(settings).update_assets({beach.id: {"context": "renamed on the shelf"}})
    assert shown()["context"] == "renamed on the shelf"


# --- the in-memory lookups (row ids by segment id, asset rows) of one table version -------------------
def full_answer(response) -> list:
    return [
        (
            r.id,
            r.score,
            r.metadata,
            r.highlights,
            [(s.id, s.score, s.start_time, s.page, s.text_snippet) for s in r.segments],
        )
        for r in response.results
    ]


def test_answers_from_the_in_memory_lookups_equal_the_answers_read_through_lancedb(tmp_path, registry):
    settings = build_home(tmp_path, registry)
    base = np.random.default_rng(3).normal(size=8)
    write_vision(
        settings,
        [(doc, 0, base + 0.05 * i) for i, doc in enumerate(CORPUS[:6])],
    )
    through_lance = SearchEngine(settings, registry, cache_size=0, memory_indexes=False)
    held = SearchEngine(settings, registry, cache_size=0)
    held.warm()
    assert held._locator(held._snapshot()) is not None and held._asset_table(held._snapshot()) is not None
    for query in QUERIES:
        expected = full_answer(through_lance.search(SearchRequest(query=query, limit=5)))
        assert expected and full_answer(held.search(SearchRequest(query=query, limit=5))) == expected
    for doc in CORPUS[:6]:
        for entity in (doc.id, doc.segment_id(0)):
            expected = full_answer(through_lance.similar(entity, threshold=0.0, limit=10))
            assert expected and full_answer(held.similar(entity, threshold=0.0, limit=10)) == expected


def test_the_in_memory_locator_knows_a_vision_vector_whose_segment_row_is_gone(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    beach, city, report = BY_NAME["beach.mp4"], BY_NAME["city.mp4"], BY_NAME["report.pdf"]
    base = np.random.default_rng(1).normal(size=8)
    write_vision(settings, [(beach, 0, base), (city, 7, base + 0.01), (report, 1, base + 0.02)])
    engine = SearchEngine(settings, registry)
    engine.warm()
    locator = engine._locator(engine._snapshot())
    assert locator is not None
    assert set(locator.row_ids([city.segment_id(7), report.segment_id(1), "not-a-uuid"])) == {
        report.segment_id(1)
    }
    response = engine.similar(beach.id, threshold=0.9, limit=10)
    assert [r.id for r in response.results] == [report.id]
    assert response.total == 1


def test_held_asset_rows_are_never_served_for_a_newer_version_of_the_assets_table(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    engine = SearchEngine(settings, registry, cache_size=0)
    engine.warm()
    beach = BY_NAME["beach.mp4"]

    def shown() -> dict:
        response = engine.search(SearchRequest(query="sandcastle", limit=5))
        return next(r for r in response.results if r.id == beach.id).metadata

    assert shown()["context"] != "renamed on the shelf"
    Catalog(settings).update_assets({beach.id: {"context": "renamed on the shelf"}})
    assert shown()["context"] == "renamed on the shelf"  # the new version: read through LanceDB
    engine.warm()
    assert engine._asset_table(engine._snapshot()) is not None
    assert shown()["context"] == "renamed on the shelf"  # the new version's own held rows


def test_segment_ids_of_any_arrow_layout_are_located(tmp_path):
    from dataflux_api.query.lookup import SegmentLocator, _fixed_width_ids

    ids = [segment_id_for(asset_id(f"f{i}"), "shot", i) for i in range(50)]
    chunked = pa.chunked_array([pa.array(ids[:20]), pa.array(ids[20:])])
    sliced = pa.array(["x" * 36, *ids])[1:]  # an offset into the data buffer
    for column in (chunked, sliced, pa.array(ids, pa.large_string())):
        assert _fixed_width_ids(column).tolist() == [s.encode() for s in ids]
    locator = SegmentLocator(_fixed_width_ids(pa.array(ids)), np.arange(100, 150, dtype=np.uint64))
    assert locator.row_ids([ids[7], ids[0], "short", ids[7].upper()]) == {ids[7]: 107, ids[0]: 100}


def test_waiting_for_a_version_while_another_builds_gets_the_version_asked_for():
    import threading

    from dataflux_api.query.lookup import VersionedIndex

    release = threading.Event()

    def build(table):
        if table == "old":
            release.wait(5)
        return f"index of {table}"

    index = VersionedIndex("test", build)
    assert index.get("old", 1) is None  # starts the build of version 1, which waits
    threading.Timer(0.2, release.set).start()
    assert index.wait("new", 2) == "index of new"
    assert index.get("new", 2) == "index of new" and index.get("old", 1) is None
