"""Hybrid search over real Lance tables: paraphrase and exact phrase, filters, grouping, pagination, cache."""

from __future__ import annotations

import dataclasses
import datetime as dt

import msgspec
import numpy as np
import pytest
from query_corpus import CORPUS, NOW, TRAVEL, Doc, Seg, build_home, settings_for, write_docs, write_vision
from tiny_models import build_tiny_clip

from dataflux_api.errors import NotFound
from dataflux_api.query import SearchEngine, SearchFilters, SearchRequest
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.lance_sql import FilterError
from dataflux_pipelines.models.registry import ModelRegistry

BY_NAME = {d.name: d for d in CORPUS}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    clip = build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")
    settings = settings_for(tmp_path_factory.mktemp("registry-home"), clip_model=str(clip))
    return ModelRegistry(settings)


@pytest.fixture(scope="module")
def home(tmp_path_factory, registry):
    return build_home(tmp_path_factory.mktemp("corpus"), registry)


@pytest.fixture(scope="module")
def engine(home, registry):
    return SearchEngine(home, registry)


def names(response) -> list[str]:
    by_id = {d.id: d.name for d in CORPUS}
    return [by_id.get(r.id, r.id) for r in response.results]


def ask(engine, query: str, **kwargs):
    return engine.search(SearchRequest(query=query, **kwargs))


def test_a_paraphrase_with_no_shared_words_finds_the_document_by_meaning(engine, home):
    response = ask(engine, "company earnings increased")
    assert names(response)[0] == "report.pdf"
    assert "text_vector" in response.understood["retrievers"]
    # The same query without the text model finds nothing: no word of it occurs in the corpus.
    lexical_only = SearchEngine(home, None).search(SearchRequest(query="company earnings increased"))
    assert lexical_only.results == []
    assert "no model registry" in lexical_only.understood["notes"][0]


def test_a_quoted_phrase_matches_only_rows_containing_it_in_order(engine):
    response = ask(engine, '"red car"')
    assert names(response) == ["neighbour.txt"]
    assert response.results[0].highlights == ["My neighbour bought a red car last week."]
    # Both words, but not as a phrase: found by plain terms.
    assert "paint.txt" in names(ask(engine, "red car"))


def test_results_group_segments_under_assets_with_time_ranges_and_pages(engine):
    beach = ask(engine, "children building a sandcastle").results[0]
    assert beach.id == BY_NAME["beach.mp4"].id
    assert beach.type == "video"
    top = beach.segments[0]
    assert (top.start_time, top.end_time, top.segment_type) == (5.0, 12.0, "shot")
    assert top.thumbnail_url == f"/api/v1/segments/{top.id}/thumbnail"
    assert beach.metadata["filename"] == "beach.mp4"
    assert beach.metadata["duration"] == 180.0
    assert beach.metadata["thumbnail_url"] == f"/api/v1/assets/{beach.id}/thumbnail"

    report = ask(engine, "warehouse inventory").results[0]
    assert report.id == BY_NAME["report.pdf"].id
    assert report.segments[0].page == 2
    assert report.highlights[0] == "The warehouse inventory was counted in March."
    assert 0 < report.score <= 1


def test_include_segments_false_keeps_highlights_but_drops_segments(engine):
    result = ask(engine, "warehouse inventory", include_segments=False).results[0]
    assert result.segments == []
    assert result.highlights


def test_the_response_reports_total_timing_and_paging(engine):
    response = ask(engine, "water", limit=1)
    assert response.limit == 1 and response.offset == 0
    assert response.total >= 2
    assert len(response.results) == 1
    assert isinstance(response.took_ms, int) and response.took_ms >= 0
    msgspec.json.encode(response)  # the whole response is JSON-serialisable


def test_pages_do_not_overlap_and_concatenate_to_the_full_ranking(engine):
    # A list of unrelated topics: each document answers one word of nine, so ask for weak hits too.
    query = "a busy street, sandy beach, red car, bread and revenue"
    full = ask(engine, query, limit=6, min_score=0.0)
    first = ask(engine, query, limit=3, min_score=0.0)
    second = ask(engine, query, limit=3, offset=3, min_score=0.0)
    assert full.total >= 6
    assert [r.id for r in first.results + second.results] == [r.id for r in full.results]
    assert first.total == second.total == full.total


def test_media_type_words_in_the_query_filter_the_results(engine):
    response = ask(engine, "videos with water")
    assert response.understood["media_types"] == ["video"]
    assert response.results and {r.type for r in response.results} == {"video"}
    explicit = ask(engine, "water", media_types=["document"])
    assert {r.type for r in explicit.results} == {"document"}


@pytest.mark.parametrize(
    ("filters", "included", "excluded"),
    [
        (SearchFilters(mime_types=["text/markdown"]), {"recipes.md"}, {"report.pdf", "beach.mp4"}),
        (SearchFilters(collection_id=TRAVEL), {"beach.mp4", "city.mp4"}, {"recipes.md", "dog.jpg"}),
        (SearchFilters(status="processing"), {"dog.jpg"}, {"beach.mp4", "report.pdf"}),
        (SearchFilters(confidence_min=0.5), {"paint.txt"}, {"neighbour.txt"}),
        (
            SearchFilters(
                created_after=NOW - dt.timedelta(days=10), created_before=NOW - dt.timedelta(days=1)
            ),
            {"report.pdf"},
            {"recipes.md", "beach.mp4"},
        ),
        (SearchFilters(duration_min=60.0, duration_max=300.0), {"beach.mp4"}, {"city.mp4", "podcast.mp3"}),
    ],
)
def test_filters_are_applied_inside_the_store_query(engine, filters, included, excluded):
    query = "water beach park car red bread revenue street dog"
    # Nine unrelated words: each asset answers one or two, below the relevance floor; min_score=0 keeps them.
    unfiltered = set(names(ask(engine, query, limit=50, min_score=0.0)))
    assert excluded & unfiltered, "the excluded assets must match without the filter"
    found = set(names(ask(engine, query, limit=50, filters=filters, min_score=0.0)))
    assert included <= found
    assert not (excluded & found)


def test_duration_and_date_words_in_the_query_filter_the_results(engine):
    response = ask(engine, "videos longer than 2 minutes with water")
    assert response.understood["duration_min"] == 120.0
    assert names(response) == ["beach.mp4"]
    recent = ask(engine, "bread or revenue uploaded in the last 3 days")
    assert recent.understood["created_after"] is not None
    # The corpus is dated around 2026-03-10; "the last 3 days" counts back from the real clock.
    expected = {d.name for d in CORPUS if d.created_at >= dt.datetime.now(dt.UTC) - dt.timedelta(days=3)}
    assert set(names(recent)) <= expected


def test_a_filter_that_matches_nothing_returns_an_empty_page(engine):
    response = ask(engine, "water", filters=SearchFilters(mime_types=["image/gif"]))
    assert response.results == [] and response.total == 0


def test_the_same_request_is_answered_from_the_cache_until_new_rows_are_written(tmp_path, registry):
    settings = build_home(tmp_path, registry, [BY_NAME["recipes.md"]])
    engine = SearchEngine(settings, registry)
    first = ask(engine, "sourdough")
    assert names(first) == ["recipes.md"]
    hits = engine.cache.hits
    assert names(ask(engine, "sourdough")) == ["recipes.md"]
    assert engine.cache.hits == hits + 1

    fresh = Doc("starter.txt", "document", "text/plain", [Seg("Feed the sourdough starter daily.", page=1)])
    write_docs(Catalog(settings), registry, [fresh])
    after = ask(engine, "sourdough")
    assert engine.cache.hits == hits + 1, "a new table version must change the cache key"
    assert {r.id for r in after.results} == {BY_NAME["recipes.md"].id, fresh.id}


def test_a_snapshot_keeps_reading_the_versions_it_pinned(tmp_path, registry):
    settings = build_home(tmp_path, registry, [BY_NAME["recipes.md"]])
    engine = SearchEngine(settings, registry)
    snapshot = engine._snapshot()
    before = snapshot.get(layout.SEGMENTS_TABLE).count_rows()
    write_docs(Catalog(settings), registry, [BY_NAME["paint.txt"]])
    assert snapshot.get(layout.SEGMENTS_TABLE).count_rows() == before
    assert engine._snapshot().get(layout.SEGMENTS_TABLE).count_rows() == before + 1


def test_text_to_image_search_uses_the_clip_text_tower_over_vision_vectors(tmp_path, registry):
    settings = build_home(tmp_path, registry, [BY_NAME["dog.jpg"], BY_NAME["recipes.md"]])
    clip = registry.clip
    query = "golden retriever"
    # The dog image's stored vector is the query's own CLIP text vector, the recipe's its opposite.
    q = registry.embed_query_for_vision(query)
    write_vision(settings, [(BY_NAME["dog.jpg"], 0, q), (BY_NAME["recipes.md"], 0, -q)], space=clip.space)
    response = SearchEngine(settings, registry).search(SearchRequest(query=query, media_types=["image"]))
    assert "vision_vector" in response.understood["retrievers"]
    assert names(response) == ["dog.jpg"]


def test_similar_finds_near_vectors_of_other_assets_and_never_the_entity_itself(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    rng = np.random.default_rng(0)
    base = rng.normal(size=8)
    near = base + rng.normal(scale=0.05, size=8)
    far = rng.normal(size=8)
    beach, city, report = BY_NAME["beach.mp4"], BY_NAME["city.mp4"], BY_NAME["report.pdf"]
    write_vision(settings, [(beach, 0, base), (beach, 1, base), (city, 0, near), (report, 0, far)])
    engine = SearchEngine(settings, registry)

    by_asset = engine.similar(beach.id, threshold=0.9, limit=10)
    assert by_asset.understood["entity_type"] == "asset"
    assert [r.id for r in by_asset.results] == [city.id]
    assert by_asset.results[0].score >= 0.9

    by_segment = engine.similar(city.segment_id(0), threshold=0.9, limit=10)
    assert by_segment.understood["entity_type"] == "segment"
    assert [r.id for r in by_segment.results] == [beach.id]
    assert city.id not in [r.id for r in by_segment.results]

    only_docs = engine.similar(beach.id, threshold=0.0, limit=10, media_types=["document"])
    assert only_docs.results and {r.type for r in only_docs.results} == {"document"}


def test_similar_to_an_id_in_the_query_routes_to_similar(tmp_path, registry):
    settings = build_home(tmp_path, registry, CORPUS[:6])
    beach, city = BY_NAME["beach.mp4"], BY_NAME["city.mp4"]
    write_vision(settings, [(beach, 0, np.ones(8)), (city, 0, np.ones(8) + 0.01)])
    response = SearchEngine(settings, registry).search(SearchRequest(query=f"videos similar to {beach.id}"))
    assert response.understood["similar_to"] == beach.id
    assert response.understood["entity_type"] == "asset"
    assert [r.id for r in response.results] == [city.id]


def test_similar_to_an_unknown_id_is_not_found(engine):
    with pytest.raises(NotFound) as err:
        engine.similar("00000000-0000-5000-8000-000000000000")
    assert err.value.field == "entity_id"


def test_quoted_phrases_without_a_positional_index_say_how_to_fix_it(tmp_path, registry):
    from lancedb.index import FTS

    from dataflux_api.errors import Unavailable
    from dataflux_pipelines.catalog import connect

    settings = settings_for(tmp_path)
    write_docs(Catalog(settings), registry, [BY_NAME["neighbour.txt"]])
    connect(settings).open_table(layout.SEGMENTS_TABLE).create_index("search_text", config=FTS())
    with pytest.raises(Unavailable) as err:
        ask(SearchEngine(settings, registry), '"red car"')
    assert err.value.code == "phrase_index_missing"


def test_a_home_without_tables_answers_with_no_results(tmp_path, registry):
    engine = SearchEngine(settings_for(tmp_path), registry)
    response = ask(engine, "anything at all")
    assert response.results == [] and response.total == 0


def test_a_query_without_text_lists_the_filtered_assets_newest_first(engine):
    response = ask(engine, "videos longer than 10 seconds")
    assert response.understood["retrievers"] == ["filters_only"]
    assert set(names(response)) == {"beach.mp4", "city.mp4"}


def test_limits_are_clamped_and_bad_paging_names_the_field(engine):
    assert ask(engine, "water", limit=500).limit == 100
    with pytest.raises(FilterError) as err:
        ask(engine, "water", offset=-1)
    assert err.value.field == "offset"
    with pytest.raises(FilterError) as err:
        ask(engine, "water", limit=0)
    assert err.value.field == "limit"


def test_an_engine_whose_reader_may_lag_still_answers_from_the_data_it_sees(home):
    engine = SearchEngine(dataclasses.replace(home, lance_read_consistency_s=5.0), None)
    assert ask(engine, "sourdough").results


def test_search_uses_tuned_ann_parameters_even_when_it_fetches_more_than_they_were_tuned_for(
    tmp_path, registry
):
    settings = build_home(tmp_path, registry, [BY_NAME["recipes.md"], BY_NAME["report.pdf"]])
    filler = Doc(
        "filler.txt", "document", "text/plain", [Seg(f"filler note {i}", page=i) for i in range(300)]
    )
    write_docs(Catalog(settings), registry, [filler])
    from dataflux_pipelines.catalog import connect
    from dataflux_pipelines.embeddings.indexes import load_search_params, maintain_indexes

    db = connect(settings)
    maintain_indexes(db, ann_min_rows=256, sample_size=10)
    params = load_search_params(db)[(layout.SEGMENTS_TABLE, "text_vector")]
    assert params.index_type == "IVF_HNSW_SQ" and params.ef < 100  # retrievers fetch 100 candidates
    response = ask(SearchEngine(settings, registry), "company earnings increased")
    assert names(response)[0] == "report.pdf"


def test_text_to_image_hits_located_in_memory_answer_as_hits_located_through_lancedb(tmp_path, registry):
    settings = build_home(
        tmp_path, registry, [BY_NAME["dog.jpg"], BY_NAME["recipes.md"], BY_NAME["beach.mp4"]]
    )
    clip = registry.clip
    q = registry.embed_query_for_vision("golden retriever")
    # beach.mp4's segment 9 does not exist: a vector left behind, which neither path may return.
    rows = [
        (BY_NAME["dog.jpg"], 0, q),
        (BY_NAME["beach.mp4"], 9, q),
        (BY_NAME["beach.mp4"], 0, 0.5 * q - 0.1),
    ]
    write_vision(settings, rows, space=clip.space)
    held = SearchEngine(settings, registry, cache_size=0)
    held.warm()
    through_lance = SearchEngine(settings, registry, cache_size=0, memory_indexes=False)
    for query in ("golden retriever", "a dog at the beach"):
        expected = through_lance.search(SearchRequest(query=query))
        got = held.search(SearchRequest(query=query))
        assert "vision_vector" in got.understood["retrievers"]
        assert [(r.id, r.score, [s.id for s in r.segments]) for r in got.results] == [
            (r.id, r.score, [s.id for s in r.segments]) for r in expected.results
        ]
        shown = {s.id for r in got.results for s in r.segments}
        assert BY_NAME["beach.mp4"].segment_id(9) not in shown
