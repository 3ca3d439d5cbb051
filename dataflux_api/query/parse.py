"""Query understanding: turn a natural-language search string into phrases, constraints and free text."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from dataflux_pipelines.records import MediaType

# Words that name a media type; the plural and singular forms both count.
_MEDIA_WORDS: dict[str, MediaType] = {
    **dict.fromkeys(["video", "videos", "clip", "clips", "footage", "movie", "movies"], MediaType.VIDEO),
    **dict.fromkeys(
        ["photo", "photos", "image", "images", "picture", "pictures", "pic", "pics"], MediaType.IMAGE
    ),
    **dict.fromkeys(["audio", "recording", "recordings", "podcast", "podcasts"], MediaType.AUDIO),
    **dict.fromkeys(["document", "documents", "doc", "docs", "pdf", "pdfs"], MediaType.DOCUMENT),
}

_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
}
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(_NUMBER_WORDS) + r")"
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "m": 60, "h": 3600, "hour": 3600}
_UNIT = r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)"
_SPAN_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PHRASE_RE = re.compile(r"\"([^\"]+)\"|“([^”]+)”")
_SIMILAR_RE = re.compile(rf"\b(?:similar to|like|resembling)\s+({_UUID})\b", re.I)
_LONGER_RE = re.compile(rf"\b(?:longer than|more than|over|at least)\s+{_NUM}\s*{_UNIT}\b", re.I)
_SHORTER_RE = re.compile(
    rf"\b(?:shorter than|less than|under|at most|below)\s+{_NUM}\s*{_UNIT}\b",
    re.I,
)
_VERB = r"(?:(?:uploaded|added|created|from)\s+)?"
_LAST_N_RE = re.compile(
    rf"\b{_VERB}(?:in|within|during)\s+the\s+(?:last|past)\s+{_NUM}\s+(day|week|month|year)s?\b", re.I
)
_LAST_SPAN_RE = re.compile(rf"\b{_VERB}(?:in\s+the\s+)?(?:last|past|this)\s+(day|week|month|year)\b", re.I)
_TODAY_RE = re.compile(rf"\b{_VERB}today\b", re.I)
_YESTERDAY_RE = re.compile(rf"\b{_VERB}yesterday\b", re.I)
_SINCE_RE = re.compile(rf"\b{_VERB}(since|after|before)\s+(\d{{4}}-\d{{2}}-\d{{2}})\b", re.I)
_FILLER_START = re.compile(
    r"^(?:(?:show|find|give|get|list|search)(?:\s+me)?|search\s+for|all|any|some|the)\b\s*", re.I
)
_CONNECTORS = {
    "of",
    "with",
    "about",
    "showing",
    "containing",
    "from",
    "that",
    "which",
    "are",
    "and",
    "where",
    "in",
    "on",
    "for",
}


@dataclass
class ParsedQuery:
    """What a search string asked for: free text, exact phrases and constraints."""

    raw: str
    text: str = ""
    phrases: list[str] = field(default_factory=list)
    media_types: list[str] = field(default_factory=list)
    duration_min: float | None = None
    duration_max: float | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    similar_to: str | None = None

    @property
    def semantic_text(self) -> str:
        """The text the embedding models see: free text and phrases together."""
        return " ".join([*self.phrases, self.text]).strip()

    @property
    def has_text(self) -> bool:
        return bool(self.text or self.phrases)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape returned as `understood` beside the results."""
        return {
            "text": self.text,
            "phrases": list(self.phrases),
            "media_types": list(self.media_types),
            "duration_min": self.duration_min,
            "duration_max": self.duration_max,
            "created_after": self.created_after.isoformat() if self.created_after else None,
            "created_before": self.created_before.isoformat() if self.created_before else None,
            "similar_to": self.similar_to,
        }


def _number(token: str) -> float:
    token = token.lower()
    return float(_NUMBER_WORDS[token]) if token in _NUMBER_WORDS else float(token)


def _seconds(number: str, unit: str) -> float:
    unit = unit.lower().rstrip("s") or "s"
    if unit == "hr":
        unit = "h"
    if unit == "sec":
        unit = "s"
    return _number(number) * _UNIT_SECONDS[unit]


def _midnight(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _later(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b > a else a


def _earlier(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b < a else a


def parse_query(text: str, now: dt.datetime) -> ParsedQuery:
    """Split a search string into phrases, media types, duration/date constraints, a similar-to id and free text."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    parsed = ParsedQuery(raw=text)
    rest = text

    def cut(match: re.Match[str]) -> str:
        return " "

    for match in _PHRASE_RE.finditer(rest):
        phrase = " ".join((match.group(1) or match.group(2)).split())
        if phrase:
            parsed.phrases.append(phrase)
    rest = _PHRASE_RE.sub(cut, rest)

    similar = _SIMILAR_RE.search(rest)
    if similar:
        parsed.similar_to = similar.group(1).lower()
        rest = rest[: similar.start()] + " " + rest[similar.end() :]

    for match in _LONGER_RE.finditer(rest):
        seconds = _seconds(match.group(1), match.group(2))
        parsed.duration_min = max(parsed.duration_min or 0.0, seconds)
    rest = _LONGER_RE.sub(cut, rest)
    for match in _SHORTER_RE.finditer(rest):
        seconds = _seconds(match.group(1), match.group(2))
        parsed.duration_max = seconds if parsed.duration_max is None else min(parsed.duration_max, seconds)
    rest = _SHORTER_RE.sub(cut, rest)

    for match in _LAST_N_RE.finditer(rest):
        days = _number(match.group(1)) * _SPAN_DAYS[match.group(2).lower()]
        parsed.created_after = _later(parsed.created_after, now - dt.timedelta(days=days))
    rest = _LAST_N_RE.sub(cut, rest)
    for match in _LAST_SPAN_RE.finditer(rest):
        parsed.created_after = _later(
            parsed.created_after, now - dt.timedelta(days=_SPAN_DAYS[match.group(1).lower()])
        )
    rest = _LAST_SPAN_RE.sub(cut, rest)
    if _TODAY_RE.search(rest):
        parsed.created_after = _later(parsed.created_after, _midnight(now))
        rest = _TODAY_RE.sub(cut, rest)
    if _YESTERDAY_RE.search(rest):
        parsed.created_after = _later(parsed.created_after, _midnight(now) - dt.timedelta(days=1))
        parsed.created_before = _earlier(parsed.created_before, _midnight(now))
        rest = _YESTERDAY_RE.sub(cut, rest)
    for match in _SINCE_RE.finditer(rest):
        try:
            day = dt.datetime.strptime(match.group(2), "%Y-%m-%d").replace(tzinfo=dt.UTC)
        except ValueError:
            continue  # not a calendar date: leave it in the free text
        if match.group(1).lower() == "before":
            parsed.created_before = _earlier(parsed.created_before, day)
        else:
            parsed.created_after = _later(parsed.created_after, day)
        rest = rest.replace(match.group(0), " ", 1)

    words = []
    for word in re.split(r"\s+", rest):
        key = word.strip(",.;:!?").lower()
        media = _MEDIA_WORDS.get(key)
        if media is not None:
            if media.value not in parsed.media_types:
                parsed.media_types.append(media.value)
            continue
        if word:
            words.append(word)
    parsed.text = _tidy(" ".join(words))
    return parsed


def _tidy(text: str) -> str:
    """Drop the filler and connector words left at the edges once constraints are cut out."""
    text = " ".join(text.split()).strip(" ,.;:!?")
    while True:
        stripped = _FILLER_START.sub("", text)
        if stripped == text:
            break
        text = stripped
    words = text.split()
    while words and words[0].lower().strip(",.;:") in _CONNECTORS:
        words.pop(0)
    while words and words[-1].lower().strip(",.;:") in _CONNECTORS:
        words.pop()
    return " ".join(words).strip(" ,.;:!?")
