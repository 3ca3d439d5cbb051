"""Words that mean something else do not outvote meaning: real MiniLM over topic documents in real Lance."""

from __future__ import annotations

import pytest
from query_corpus import Doc, Seg, build_home
from topic_corpus import TOPICS, documents, precision_at

from dataflux_api.query import SearchEngine, SearchRequest
from dataflux_api.query import relevance as rel
from dataflux_pipelines.models.registry import ModelRegistry

# Families 0-2 (tune families): "queen"/"king", "python"/"java" and "bank"/"current" in more than one sense.
FAMILIES = (0, 1, 2)
TOPIC = {t.name: t for t in TOPICS}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from query_corpus import settings_for

    return ModelRegistry(settings_for(tmp_path_factory.mktemp("registry-home")))


@pytest.fixture(scope="module")
def library(tmp_path_factory, registry):
    # Seed 5, not the seed 17 the fusion constants were tuned on: other sentences, other documents.
    picked = [d for d in documents(seed=5, markdown=150, pdfs=0) if TOPIC[d.topic].family in FAMILIES]
    docs = [Doc(d.filename, "document", "text/markdown", [Seg(d.text, page=1)]) for d in picked]
    settings = build_home(tmp_path_factory.mktemp("topics"), registry, docs)
    topic_of = {doc.id: d.topic for doc, d in zip(docs, picked, strict=True)}
    return SearchEngine(settings, registry), topic_of


def _topics(library, query: str, **kwargs) -> tuple[list[str | None], list]:
    engine, topic_of = library
    results = engine.search(SearchRequest(query=query, limit=3, **kwargs)).results
    return [topic_of.get(r.id) for r in results], results


KINGS_NOT_MET = pytest.mark.xfail(
    strict=True,
    reason="not met: MiniLM puts the chess notes (cosine ~0.35-0.40) at least as near 'kings and queens' as the "
    "royal history, and both words match them; weighing words by meaning does not reverse that",
)


@pytest.mark.parametrize(
    "topic", [pytest.param("monarchy", marks=KINGS_NOT_MET), "reptiles", "coffee", "river"]
)
def test_a_query_whose_words_belong_to_another_topic_is_answered_by_the_topic_it_means(library, topic):
    query = TOPIC[topic].query
    assert TOPIC[topic].trap
    got, results = _topics(library, query)
    assert got[0] == topic, (query, got, [r.explanation for r in results])
    assert precision_at(got, topic) >= 2 / 3, (query, got)


def test_a_sibling_that_only_shares_words_has_them_discounted_and_says_why(library):
    by_topic: dict[str | None, float] = {}
    engine, topic_of = library
    everything = engine.search(SearchRequest(query="kings and queens", limit=50, min_score=0)).results
    for r in everything:
        by_topic.setdefault(topic_of.get(r.id), r.score)
    assert by_topic["monarchy"] > by_topic["beekeeping"] > 0
    bees = next(r for r in everything if topic_of.get(r.id) == "beekeeping")
    # The hive notes say "queen" (of the bees): one of two words, far from the query's meaning, so that
    # word counts less than half coverage in a document (0.8 * sqrt(1/2)) would, and the explanation says so.
    assert bees.explanation["document_text"] == ["queen"]
    assert bees.explanation["word_agreement"] < 1.0
    assert bees.explanation["legs"]["document_text"] < 0.8 * 0.5**0.5
    assert "text_similarity" in bees.explanation


def test_a_query_whose_words_and_meaning_agree_keeps_its_word_evidence(library):
    got, results = _topics(library, TOPIC["chess"].query)
    assert got == ["chess"] * 3, got
    top = results[0].explanation
    assert top["document_text"] and top.get("word_agreement", 1.0) > 0.8, top


def test_word_agreement_rises_with_cosine_between_its_bounds_and_is_neutral_without_a_vector():
    assert rel.word_agreement(None) == 1.0
    low, mid, high = (rel.word_agreement(c) for c in (-0.2, 0.3, 0.9))
    assert low == pytest.approx(rel.WORD_AGREEMENT_MIN)
    assert low < mid < high == 1.0


def test_evidence_without_a_text_vector_scores_words_as_before():
    ev = rel.Evidence(fields={"document_text": "the queen moved to e4"})
    score, explanation = rel.score(["queen"], "queen", ev)
    assert score == pytest.approx(0.8)
    assert "word_agreement" not in explanation


def test_words_are_found_as_whole_words_with_at_most_one_plural_s():
    text = "Cats concatenate; the glass Café shelves hold boxes of CAT food and bus tickets."
    assert rel._found(text, ["cat", "glass", "café", "shelve", "box", "bu", "ticket", "food"]) == [
        "cat",  # "Cats" and "CAT"
        "glass",  # "glass" itself ("glas" + s is not a plural: double s)
        "café",
        "shelve",  # "shelves" stems to "shelve"
        "ticket",
        "food",
    ]
    assert rel._found(text, ["catenate", "ass", "ox"]) == []  # inside other words only
    assert rel._found("", ["cat"]) == []


def test_a_candidate_scored_without_its_explanation_has_the_same_relevance():
    ev = rel.Evidence(
        text_cosine=0.31,
        vision_cosine=0.27,
        fields={"document_text": "The queen moved; two queens and a king", "filename": "queens.md"},
        labels=[{"name": "crown", "confidence": 0.4}],
    )
    q = rel.prepare(["queen", "crown"], "queen crown")
    value, explanation = rel.score(["queen", "crown"], "queen crown", ev)
    assert rel.score_for(q, ev, explain=False) == (value, None)
    assert rel.score_for(q, ev) == (value, explanation)
    assert explanation["legs"] and explanation["text_similarity"] == 0.31
