"""Calibrated relevance: one score in [0, 1] per hit from what actually matched, with a per-leg explanation.

Each leg turns its raw evidence into a probability-like value: the share of query words found in the
transcript, on-screen/document text, user context and filename, or labels; the confidence of an ImageNet
label the query names (a calibrated probability already, see `imagenet_labels.LABEL_FLOOR`); MiniLM
cosine; CLIP cosine. They combine by noisy-OR, so a hit is as relevant as its strongest evidence, raised
by agreeing evidence, and the value does not depend on how many other files the query matched (ranks
do, which is why rank fusion could not give a cut-off). The mapping constants and the floor were set on
the `tune` queries of `bench/relevance.py` (a labelled set of present and absent queries over generated
media and real frames); its held-out queries give the figures in BENCHMARKS.md.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from dataflux_pipelines.models.imagenet_labels import LABEL_FLOOR, PARENTS, label_terms

# Hits below this relevance are not returned unless the request sets `min_score` (0 returns weak hits too).
# bench/relevance.py, tune queries: the floor with the best precision@3 + recall@3 among those where at
# least 90% of absent queries return nothing, lowest on ties (0.35: 0.938 / 0.938 / 1.0 there).
RELEVANCE_FLOOR = 0.35
# MiniLM cosine -> evidence: unrelated texts score 0.0-0.3 (absent queries against label-rich search
# text reach 0.36), a paraphrase with no shared word 0.41 ("company earnings increased" / revenue grew).
TEXT_COSINE_ZERO, TEXT_COSINE_FULL = 0.25, 0.55
# CLIP image-text cosine -> evidence (matching captions score ~0.28-0.35 with ViT-B/32, unrelated ~0.15-0.2).
VISION_COSINE_ZERO, VISION_COSINE_FULL = 0.20, 0.32
# How much full word coverage in each field is worth (a word in a filename proves less than in a transcript).
FIELD_WEIGHTS = {"transcript": 0.9, "on_screen_text": 0.85, "context": 0.8, "labels": 0.8, "filename": 0.6}
# A query word found in a segment proves little when the segment means something else ("queen" in chess
# notes for "kings and queens", "java" in build logs for a cup of coffee): each word leg is scaled by how
# close the segment's MiniLM vector is to the query, from WORD_AGREEMENT_MIN at cosine WORD_COSINE_ZERO or
# below to 1 at WORD_COSINE_FULL (a name or code the model does not know keeps some weight). Set on the
# tune queries of tests/topic_corpus.py (bench/peers/pixeltable.py) with bench/relevance.py's tune set
# held where it was.
WORD_COSINE_ZERO, WORD_COSINE_FULL = 0.05, 0.35
WORD_AGREEMENT_MIN = 0.5
# A label the query names counts as the measured chance that a label of that confidence is right.
LABEL_PRECISION_AT_FLOOR = 0.6
LABEL_SURE = 0.5

_WORD_RE = re.compile(r"\w+", re.UNICODE)
# A picture's features hold its hashes (~3 kB): 1.1 against json's 2.9 us, a document's 0.3 against 1.6.
_decode_json = msgspec.json.Decoder().decode


def _ramp(value: float, zero: float, full: float) -> float:
    return max(0.0, min(1.0, (value - zero) / (full - zero)))


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _found(text: str, stems: Sequence[str]) -> list[str]:
    """The stems among `stems` that some word of `text` stems to.

    `_stem` drops at most one trailing "s", so only the words `t` and `t + "s"` can stem to `t`: two set
    lookups per query term instead of stemming every word of every candidate (100-200 per query).
    """
    low = text.lower()
    # A word of the text is a substring of it: most candidates' fields hold none of the query's stems,
    # and those need no tokenizing (~100-200 candidates x 4 fields a query).
    present = [t for t in stems if t in low]
    if not present:
        return []
    words = set(_WORD_RE.findall(low))
    return [
        t for t in present if (t in words and _stem(t) == t) or (t + "s" in words and _stem(t + "s") == t)
    ]


@dataclass
class Evidence:
    """What one segment offers a query; filled by the search legs, scored by `score`."""

    text_cosine: float | None = None
    vision_cosine: float | None = None
    fields: dict[str, str | None] = field(default_factory=dict)  # field name -> text
    labels: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "confidence", ...}]


def segment_fields(row: Mapping[str, Any]) -> dict[str, str | None]:
    """The text fields of a segment row under the names explanations use."""
    visual = row.get("media_type") in ("image", "video")
    return {
        "transcript": row.get("transcript"),
        "on_screen_text" if visual else "document_text": row.get("text"),
        "context": row.get("context"),
        "filename": row.get("filename"),
    }


def stored_labels(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ImageNet labels the embedding stage stored in `semantic_features` (empty when none)."""
    raw = row.get("semantic_features") or "{}"
    try:
        features = _decode_json(raw)
    except msgspec.DecodeError:
        try:  # what msgspec refuses and json reads (NaN, Infinity)
            features = json.loads(raw)
        except json.JSONDecodeError:
            return []
    labels = features.get("labels") if isinstance(features, dict) else None
    return [x for x in labels or [] if isinstance(x, dict) and "name" in x]


def _label_classes(label: Mapping[str, Any]) -> set[int]:
    if label.get("class") is not None:
        return {int(label["class"])}
    return set(PARENTS.get(str(label["name"]).lower(), ()))


# One query is scored against every candidate (100 or more): its label terms are looked up once.
_query_label_terms = functools.lru_cache(maxsize=1024)(label_terms)


def _label_matches(query: str, labels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Labels at least as specific as a query term: "car" is answered by a cab label, "taxi" is not by "car"."""
    if not labels:
        return []
    named = _query_label_terms(query)
    if not named:
        return []
    out = []
    for label in labels:
        covered = _label_classes(label)
        for term, classes in named.items():
            if covered and covered <= set(classes):
                out.append({"query": term, "label": label["name"], "confidence": float(label["confidence"])})
                break
    return out


def word_agreement(text_cosine: float | None) -> float:
    """How much the words a segment shares with the query count, given how close its meaning is (1 when
    the segment has no text vector to judge by)."""
    if text_cosine is None:
        return 1.0
    return WORD_AGREEMENT_MIN + (1 - WORD_AGREEMENT_MIN) * _ramp(
        text_cosine, WORD_COSINE_ZERO, WORD_COSINE_FULL
    )


def label_evidence(confidence: float) -> float:
    """A stored label's confidence as the chance it is right: 0.6 at the floor (label precision on the tune
    frames at floor 0.12 was 0.62) rising to 1.0 at 0.5 (precision 1.0 there), from bench/labels.py."""
    return LABEL_PRECISION_AT_FLOOR + (1 - LABEL_PRECISION_AT_FLOOR) * _ramp(
        confidence, LABEL_FLOOR, LABEL_SURE
    )


@dataclass(frozen=True)
class Query:
    """What scoring needs of one query, worked out once for all its candidates (`prepare`)."""

    text: str
    terms: tuple[str, ...]  # the query terms, stemmed
    label_words: frozenset[str]  # words of the query that name an ImageNet label


def prepare(query_terms: Sequence[str], query: str) -> Query:
    named = _query_label_terms(query)
    return Query(query, tuple(_stem(t) for t in query_terms), frozenset(w for t in named for w in t.split()))


def score(query_terms: Sequence[str], query: str, ev: Evidence) -> tuple[float, dict[str, Any]]:
    """The relevance in [0, 1] of one segment and the explanation of each leg that contributed."""
    value, explanation = score_for(prepare(query_terms, query), ev)
    assert explanation is not None
    return value, explanation


def score_for(q: Query, ev: Evidence, explain: bool = True) -> tuple[float, dict[str, Any] | None]:
    """`score` for a prepared query; with `explain=False` only the relevance (a search scores every
    candidate, ~100-200, and explains only the page's)."""
    legs: dict[str, float] = {}
    explanation: dict[str, Any] = {}
    terms = q.terms
    # Words that name a label are answered by the labels leg; the word legs judge the rest, and the
    # label words only when no label matched (a transcript saying "taxi" still counts).
    agreement = word_agreement(ev.text_cosine)
    for name, text in ev.fields.items():
        if not text or not terms:
            continue
        found = _found(text, terms)
        if found:
            weight = FIELD_WEIGHTS.get(name, 0.8)
            # Square root: one word of a two-word query is a partial match, not a quarter of one.
            legs[name] = agreement * weight * (len(found) / len(terms)) ** 0.5
            explanation[name] = found
    if agreement < 1.0 and any(name in legs for name in ev.fields):
        explanation["word_agreement"] = agreement
    matches = _label_matches(q.text, ev.labels)
    if matches:
        best = max(m["confidence"] for m in matches)
        covered = {w for m in matches for w in m["query"].split()}
        share = len([t for t in terms if t in covered or t in q.label_words]) / max(len(terms), 1)
        legs["labels"] = label_evidence(best) * max(share, 0.5)
        explanation["labels"] = matches
    if ev.text_cosine is not None:
        legs["text_similarity"] = _ramp(ev.text_cosine, TEXT_COSINE_ZERO, TEXT_COSINE_FULL)
        explanation["text_similarity"] = ev.text_cosine
    if ev.vision_cosine is not None:
        legs["visual_similarity"] = _ramp(ev.vision_cosine, VISION_COSINE_ZERO, VISION_COSINE_FULL)
        explanation["visual_similarity"] = ev.vision_cosine
    miss = 1.0
    for value in legs.values():
        miss *= 1.0 - max(0.0, min(1.0, value))
    relevance = round(1.0 - miss, 4)  # REST, MCP and the CLI show this same value
    if not explain:
        return relevance, None
    for key in ("word_agreement", "text_similarity", "visual_similarity"):
        if key in explanation:
            explanation[key] = round(explanation[key], 4)
    explanation["legs"] = {k: round(v, 4) for k, v in sorted(legs.items()) if v > 0}
    return relevance, explanation
