"""Pure helpers that turn service answers into what the pages show (no Litestar, no I/O)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape

from dataflux_api.query.rank import query_terms
from dataflux_api.query.relevance import RELEVANCE_FLOOR

SEARCH_PAGE_SIZE = 24
LIBRARY_PAGE_SIZE = 24
# Segment types whose text is what was said, and those whose text is what was shown on screen.
TRANSCRIPT_TYPES = frozenset({"transcript", "speech", "lyrics"})
ON_SCREEN_TYPES = frozenset({"text", "ocr", "on_screen_text"})
TIMED_MEDIA = frozenset({"video", "audio"})
_WORD = re.compile(r"\w+", re.UNICODE)


def fmt_time(seconds: float | None) -> str:
    """`m:ss.t` (or `h:mm:ss`) for a time in seconds; empty for None."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    tenths = round(max(seconds, 0.0) * 10)
    minutes, rest = divmod(tenths, 600)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{rest // 10:02d}"
    text = f"{minutes}:{rest / 10:04.1f}"
    return text.removesuffix(".0")  # whole seconds read as 0:07, not 0:07.0


def fmt_span(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    return f"{fmt_time(start)}–{fmt_time(end)}" if end is not None else fmt_time(start)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_date(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ""


def version_tag(value: Any) -> str:
    """A cache-busting token for derived images (they change only when the asset is reprocessed)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return ""
    if isinstance(value, dt.datetime):
        return str(int(value.timestamp()))
    return ""


def with_version(url: str | None, version: str) -> str | None:
    if not url or not version:
        return url
    return f"{url}{'&' if '?' in url else '?'}v={version}"


def split_weak(results: Sequence[Any], floor: float = RELEVANCE_FLOOR) -> tuple[list[Any], list[Any]]:
    """Strong and weak hits (best first): scores are calibrated relevance, weak ones fall under the
    same floor the API applies when a request does not lower it (`min_score`)."""
    strong = [r for r in results if r.score >= floor]
    weak = [r for r in results if r.score < floor]
    return strong, weak


def moment_url(asset_id: str, start: float | None = None, page: int | None = None) -> str:
    """The asset page at a moment (`?t=` so the server-rendered player starts there) or a page anchor."""
    if start is not None:
        return f"/assets/{asset_id}?t={start:.2f}#t={start:.2f}"
    if page is not None:
        return f"/assets/{asset_id}#page-{page}"
    return f"/assets/{asset_id}"


def _matches(word: str, term: str) -> bool:
    # The same light stem as the search highlighter: "cars"/"car", "running"/"run".
    if word == term:
        return True
    stem = term[: max(3, len(term) - 2)]
    return len(term) > 3 and word.startswith(stem) and len(word) - len(stem) <= 4


def mark_terms(text: str | None, query: str) -> Markup:
    """`text` escaped, with the words that match the query's terms in `<mark>`."""
    if not text:
        return Markup("")
    terms = query_terms(query)
    if not terms:
        return escape(text)
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        word = match.group(0)
        if any(_matches(word.lower(), t) for t in terms):
            out.append(str(escape(text[last : match.start()])))
            out.append(f"<mark>{escape(word)}</mark>")
            last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def matched_words(texts: Iterable[str | None], query: str) -> list[str]:
    """The distinct words of `texts` that match a query term (what a hit was found by)."""
    terms = query_terms(query)
    seen: dict[str, None] = {}
    for text in texts:
        for word in _WORD.findall(text or ""):
            if any(_matches(word.lower(), t) for t in terms):
                seen.setdefault(word.lower(), None)
    return list(seen)[:8]


def matched_labels(concepts: Iterable[str], query: str) -> list[str]:
    terms = query_terms(query)
    return [c for c in concepts if any(_matches(w, t) for w in _WORD.findall(c.lower()) for t in terms)]


def classify_segments(asset: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The asset page's sections: timeline (shots, passages, pages…), transcript, on-screen text, pages."""
    timeline: list[dict[str, Any]] = []
    transcript: list[dict[str, Any]] = []
    on_screen: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    media_type = asset.get("media_type")
    for seg in sorted(
        asset.get("segments") or [],
        key=lambda s: (s.get("start_time") or 0.0, s.get("page") or 0, s.get("sequence_number") or 0),
    ):
        kind = seg.get("segment_type") or ""
        text = (seg.get("text") or "").strip()
        said = (seg.get("transcript") or "").strip()
        if kind in TRANSCRIPT_TYPES:
            said = said or text
            text = ""
        elif kind in ON_SCREEN_TYPES:
            if text:
                on_screen.append(seg | {"shown_text": text})
            continue
        else:
            timeline.append(seg)
        if said:
            transcript.append(seg | {"spoken_text": said})
        if text and kind not in TRANSCRIPT_TYPES:
            if media_type == "document":
                pages.append(seg | {"shown_text": text})
            else:
                # Text on a shot or an image is what OCR read from the picture.
                on_screen.append(seg | {"shown_text": text})
    return {"timeline": timeline, "transcript": transcript, "on_screen": on_screen, "pages": pages}


_LANE_TITLES = {
    ("video", "shot"): "Shots",
    ("video", "audio"): "Sound",
    ("audio", "audio"): "Passages",
    ("document", "page"): "Pages",
    ("document", "chunk"): "Sections",
    ("image", "image"): "Image",
    ("image", "tile"): "Tiles",
}


def timeline_lanes(media_type: str | None, timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline split by segment type (shots, sound, pages…), each lane in time order."""
    lanes: dict[str, list[dict[str, Any]]] = {}
    for seg in timeline:
        lanes.setdefault(seg.get("segment_type") or "segment", []).append(seg)
    order = ["shot", "image", "page", "chunk", "tile", "audio"]
    out = []
    for kind in sorted(lanes, key=lambda k: (order.index(k) if k in order else len(order), k)):
        title = _LANE_TITLES.get((media_type or "", kind), kind.replace("_", " ").capitalize() + "s")
        out.append({"kind": kind, "title": title, "segments": lanes[kind]})
    return out


def concept_summary(segments: Iterable[dict[str, Any]], limit: int = 30) -> list[dict[str, Any]]:
    """Labels and concepts over all segments: best confidence and how many segments carry each."""
    found: dict[str, dict[str, Any]] = {}
    for seg in segments:
        scores = (seg.get("semantic_features") or {}).get("concepts") or {}
        for name in seg.get("concepts") or []:
            entry = found.setdefault(name, {"name": name, "segments": 0, "confidence": None})
            entry["segments"] += 1
            score = scores.get(name) if isinstance(scores, dict) else None
            if isinstance(score, int | float):
                entry["confidence"] = max(entry["confidence"] or 0.0, float(score))
    ordered = sorted(found.values(), key=lambda e: (-(e["confidence"] or 0.0), -e["segments"], e["name"]))
    return ordered[:limit]


def metadata_facts(asset: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs for the asset's technical metadata (only those known)."""
    meta: dict[str, Any] = asset["metadata"] if isinstance(asset.get("metadata"), dict) else {}
    facts: list[tuple[str, str]] = [
        ("Type", f"{asset.get('media_type') or 'unknown'} · {asset.get('mime_type') or ''}".strip(" ·")),
        ("Size", fmt_bytes(asset.get("file_size"))),
    ]
    if asset.get("duration"):
        facts.append(("Duration", fmt_time(asset["duration"])))
    if asset.get("width") and asset.get("height"):
        facts.append(("Resolution", f"{asset['width']} × {asset['height']}"))
    for key, label in (
        ("video_codec", "Video codec"),
        ("fps", "Frame rate"),
        ("audio_codec", "Audio codec"),
        ("sample_rate", "Sample rate"),
        ("channels", "Channels"),
        ("page_count", "Pages"),
    ):
        value = meta.get(key)
        if value not in (None, "", 0):
            if key == "fps":
                value = f"{float(value):.3g} fps"
            elif key == "sample_rate":
                value = f"{int(value)} Hz"
            facts.append((label, str(value)))
    facts.append(("Segments", str(asset.get("segment_count") or len(asset.get("segments") or []))))
    facts.append(("Added", fmt_date(asset.get("created_at"))))
    facts.append(("Updated", fmt_date(asset.get("updated_at"))))
    return [(k, v) for k, v in facts if v]


def query_string(params: dict[str, Any], **changes: Any) -> str:
    """`?a=1&b=2` from the current parameters with some changed (None drops one)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        if value in (None, "", False):
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, v) for v in value if v)
        else:
            pairs.append((key, "1" if value is True else str(value)))
    return "?" + urlencode(pairs) if pairs else ""


def parse_day(value: str | None, field: str, *, end: bool = False) -> dt.datetime | None:
    """A `YYYY-MM-DD` date input as a UTC instant (the start of the day, or the end with `end`)."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not a date (YYYY-MM-DD)") from exc
    instant = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return instant + dt.timedelta(days=1, microseconds=-1) if end else instant


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
