"""Pure ranking pieces of search: reciprocal rank fusion, grouping by asset, highlight sentences."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

RRF_K = 60  # the constant from Cormack et al.; damps the head of each list without ignoring the tail

_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it"}
    | {"its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "with"}
)
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None, k: int = RRF_K
) -> dict[str, float]:
    """Fuse ranked id lists into one score per id, normalised so an id ranked first everywhere scores 1."""
    weights = weights or {}
    scores: dict[str, float] = {}
    best = 0.0
    for name, ids in ranked.items():
        if not ids:
            continue
        weight = weights.get(name, 1.0)
        best += weight / (k + 1)
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    if best == 0.0:
        return {}
    return {item: score / best for item, score in scores.items()}


def group_by_asset(
    segment_scores: Mapping[str, float], asset_of: Mapping[str, str]
) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """Assets ordered by their best segment's score, each with its segments best first (ties by id)."""
    grouped: dict[str, list[tuple[str, float]]] = {}
    for segment_id, score in segment_scores.items():
        asset_id = asset_of.get(segment_id)
        if asset_id is not None:
            grouped.setdefault(asset_id, []).append((segment_id, score))
    out = []
    for asset_id, hits in grouped.items():
        hits.sort(key=lambda h: (-h[1], h[0]))
        out.append((asset_id, hits[0][1], hits))
    out.sort(key=lambda a: (-a[1], a[0]))
    return out


def query_terms(text: str) -> list[str]:
    """Lower-case content words of a query, in order, without duplicates."""
    seen: dict[str, None] = {}
    for word in _WORD_RE.findall(text.lower()):
        if len(word) > 1 and word not in _STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def _matches(word: str, term: str) -> bool:
    # A light stem: "cars" and "car", "running" and "run" match without a stemmer dependency.
    if word == term:
        return True
    stem = term[: max(3, len(term) - 2)]
    return len(term) > 3 and word.startswith(stem) and len(word) - len(stem) <= 4


def highlight_sentences(
    text: str | None, terms: Sequence[str], phrases: Sequence[str] = (), limit: int = 2, max_chars: int = 300
) -> list[str]:
    """The sentences of `text` that contain the most query terms (phrases count double)."""
    if not text:
        return []
    scored = []
    for position, sentence in enumerate(s.strip() for s in _SENTENCE_RE.split(text)):
        if not sentence:
            continue
        lowered = sentence.lower()
        words = _WORD_RE.findall(lowered)
        score = sum(2 for p in phrases if p.lower() in lowered)
        score += sum(1 for term in terms if any(_matches(w, term) for w in words))
        if score:
            scored.append((score, position, sentence))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [_clip(s, max_chars) for _, _, s in scored[:limit]]


def matched_words(raw: str | list | None, terms: Sequence[str], limit: int = 20) -> list[dict]:
    """The transcript words (with times) or on-screen lines (with boxes) of a segment that contain a
    query term; `raw` is the segment's `words` JSON."""
    import json

    if not raw or not terms:
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        said = str(item.get("word") or item.get("text") or "")
        words = _WORD_RE.findall(said.lower())
        if any(_matches(w, t) for w in words for t in terms):
            out.append(item)
            if len(out) >= limit:
                break
    return out


def _clip(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1].rsplit(" ", 1)[0] + "…"


def snippet(text: str | None, max_chars: int = 200) -> str | None:
    """The start of a segment's text, for display when no sentence contains a query term."""
    if not text:
        return None
    return _clip(text, max_chars)
