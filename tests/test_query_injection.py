"""Filter and query injection attempts either fail naming the field or match literally, touching nothing else."""

from __future__ import annotations

import pytest
from query_corpus import build_home, settings_for
from tiny_models import build_tiny_clip

from dataflux_api.query import SearchEngine, SearchFilters, SearchRequest
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import connect
from dataflux_pipelines.lance_sql import FilterError
from dataflux_pipelines.models.registry import ModelRegistry

ATTACKS = [
    "' OR 1=1 --",
    "') OR ('1'='1",
    "x' OR '1'='1",
    '" OR ""="',
    "MATCH (n) DETACH DELETE n",
    "}) RETURN n //",
    "image/jpeg\x00",
    "1; DROP TABLE assets",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    clip = build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")
    registry = ModelRegistry(settings_for(tmp_path_factory.mktemp("r"), clip_model=str(clip)))
    settings = build_home(tmp_path_factory.mktemp("corpus"), registry)
    return SearchEngine(settings, registry, cache_size=0)


def row_counts(engine) -> dict[str, int]:
    db = connect(engine.settings)
    return {t: db.open_table(t).count_rows() for t in (layout.ASSETS_TABLE, layout.SEGMENTS_TABLE)}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("filters.mime_types", lambda a: SearchFilters(mime_types=[a])),
        ("filters.collection_id", lambda a: SearchFilters(collection_id=a)),
        ("filters.status", lambda a: SearchFilters(status=a)),
    ],
)
def test_hostile_filter_values_are_rejected_naming_the_field(engine, attack, field, make):
    with pytest.raises(FilterError) as err:
        engine.search(SearchRequest(query="water", filters=make(attack)))
    assert err.value.field == field


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_media_types_and_similar_ids_are_rejected_naming_the_field(engine, attack):
    with pytest.raises(FilterError) as err:
        engine.search(SearchRequest(query="water", media_types=[attack]))
    assert err.value.field == "media_types"
    with pytest.raises(FilterError) as err:
        engine.similar(attack)
    assert err.value.field == "entity_id"


@pytest.mark.parametrize("attack", [a for a in ATTACKS if "\x00" not in a])
def test_hostile_query_text_matches_literally_and_changes_nothing(engine, attack):
    before = row_counts(engine)
    everything = engine.search(SearchRequest(query="water beach car bread revenue dog", limit=100))
    response = engine.search(SearchRequest(query=attack, limit=100))
    # Injection would return every row; a literal match returns at most the rows that contain those words.
    assert response.total < everything.total
    assert row_counts(engine) == before


def test_quotes_in_query_text_find_the_row_that_contains_them(engine):
    response = engine.search(SearchRequest(query='"O\'Reilly"'))
    assert [r.metadata["filename"] for r in response.results] == ["oreilly.txt"]
    assert response.results[0].highlights == ["O'Reilly wrote about SQL OR 1=1 tricks."]


def test_a_nul_character_in_the_query_is_rejected_naming_the_field(engine):
    with pytest.raises(FilterError) as err:
        engine.search(SearchRequest(query="water\x00' OR 1=1"))
    assert err.value.field == "query"


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        (SearchFilters(confidence_min=float("nan")), "filters.confidence_min"),
        (SearchFilters(confidence_min=2.0), "filters.confidence_min"),
        (SearchFilters(duration_min=-1.0), "filters.duration_min"),
        (SearchFilters(duration_min=10.0, duration_max=5.0), "filters.duration_min"),
    ],
)
def test_out_of_range_numbers_are_rejected_naming_the_field(engine, filters, field):
    with pytest.raises(FilterError) as err:
        engine.search(SearchRequest(query="water", filters=filters))
    assert err.value.field == field
