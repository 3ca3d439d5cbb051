"""Query understanding and the pure ranking pieces of search."""

from __future__ import annotations

import datetime as dt

import pytest

from dataflux_api.query import rank
from dataflux_api.query.parse import parse_query

NOW = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC)
UUID = "0b6a3c1e-1f2d-5e3a-9c4b-7d8e9f0a1b2c"


def test_quoted_phrases_are_kept_whole_and_cut_from_the_free_text():
    parsed = parse_query('reports about "red car" and “blue boat” accidents', NOW)
    assert parsed.phrases == ["red car", "blue boat"]
    assert parsed.text == "reports about and accidents"
    assert "red car" in parsed.semantic_text


@pytest.mark.parametrize(
    ("text", "media", "rest"),
    [
        ("videos of dogs on a beach", ["video"], "dogs on a beach"),
        ("photos of sunsets", ["image"], "sunsets"),
        ("show me pictures with cats", ["image"], "cats"),
        ("audio recordings about jazz", ["audio"], "jazz"),
        ("pdfs about tax law", ["document"], "tax law"),
        ("documents and images of invoices", ["document", "image"], "invoices"),
        ("red sports car", [], "red sports car"),
    ],
)
def test_media_type_words_become_a_media_filter(text, media, rest):
    parsed = parse_query(text, NOW)
    assert parsed.media_types == media
    assert parsed.text == rest


@pytest.mark.parametrize(
    ("text", "minimum", "maximum"),
    [
        ("videos longer than 2 minutes", 120.0, None),
        ("clips shorter than 30 seconds", None, 30.0),
        ("podcasts under 1 minute", None, 60.0),
        ("videos longer than a minute but shorter than 1 hour", 60.0, 3600.0),
        ("recordings over 90 s", 90.0, None),
    ],
)
def test_duration_constraints_are_read_in_seconds(text, minimum, maximum):
    parsed = parse_query(text, NOW)
    assert (parsed.duration_min, parsed.duration_max) == (minimum, maximum)
    assert "than" not in parsed.text and "minute" not in parsed.text


@pytest.mark.parametrize(
    ("text", "after", "before"),
    [
        ("photos uploaded last week", NOW - dt.timedelta(days=7), None),
        ("documents uploaded today", dt.datetime(2026, 3, 10, tzinfo=dt.UTC), None),
        (
            "videos from yesterday",
            dt.datetime(2026, 3, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 3, 10, tzinfo=dt.UTC),
        ),
        ("invoices added in the last 3 days", NOW - dt.timedelta(days=3), None),
        ("memos since 2026-01-01", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), None),
        ("memos before 2025-12-24", None, dt.datetime(2025, 12, 24, tzinfo=dt.UTC)),
    ],
)
def test_date_constraints_are_resolved_against_now(text, after, before):
    parsed = parse_query(text, NOW)
    assert parsed.created_after == after
    assert parsed.created_before == before
    assert not any(w in parsed.text for w in ("uploaded", "today", "yesterday", "last", "since", "before"))


def test_similar_to_an_id_is_recognised_and_the_id_lower_cased():
    parsed = parse_query(f"images similar to {UUID.upper()}", NOW)
    assert parsed.similar_to == UUID
    assert parsed.media_types == ["image"]
    assert parsed.text == ""


def test_understood_is_plain_json_data():
    parsed = parse_query('"annual report" pdfs uploaded last week longer than 1 minute', NOW)
    understood = parsed.to_dict()
    assert understood["phrases"] == ["annual report"]
    assert understood["media_types"] == ["document"]
    assert understood["duration_min"] == 60.0
    assert understood["created_after"] == (NOW - dt.timedelta(days=7)).isoformat()
    assert understood["similar_to"] is None


def test_an_invalid_calendar_date_stays_in_the_free_text():
    parsed = parse_query("notes since 2026-02-31", NOW)
    assert parsed.created_after is None
    assert "2026-02-31" in parsed.text


def test_reciprocal_rank_fusion_rewards_agreement_between_retrievers():
    fused = rank.reciprocal_rank_fusion({"vector": ["a", "b", "c"], "fts": ["b", "d"]})
    assert max(fused, key=fused.get) == "b"
    assert fused["b"] > fused["a"] > fused["d"]
    assert rank.reciprocal_rank_fusion({"vector": ["x"], "fts": ["x"]}) == {"x": pytest.approx(1.0)}


def test_graph_weight_lowers_a_retrievers_influence():
    plain = rank.reciprocal_rank_fusion({"fts": ["a"], "graph": ["b"]})
    weighted = rank.reciprocal_rank_fusion({"fts": ["a"], "graph": ["b"]}, {"graph": 0.5})
    assert plain["a"] == pytest.approx(plain["b"])
    assert weighted["a"] > weighted["b"]


def test_grouping_orders_assets_by_their_best_segment():
    groups = rank.group_by_asset({"s1": 0.2, "s2": 0.9, "s3": 0.5}, {"s1": "A", "s2": "B", "s3": "A"})
    assert [(a, s) for a, s, _ in groups] == [("B", 0.9), ("A", 0.5)]
    assert [sid for sid, _ in groups[1][2]] == ["s3", "s1"]


def test_highlights_are_the_sentences_that_contain_query_terms():
    text = "The weather was fine. Two red cars collided at noon. Nobody was hurt."
    assert rank.highlight_sentences(text, rank.query_terms("red car")) == ["Two red cars collided at noon."]
    assert rank.highlight_sentences(text, [], phrases=["nobody was hurt"]) == ["Nobody was hurt."]
    assert rank.highlight_sentences(text, ["volcano"]) == []
