"""Request and response shapes of search and similar, shared by REST and MCP."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

MAX_SEARCH_LIMIT = 100  # results per page; a larger limit is clamped, a limit under 1 is refused


class SearchFilters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mime_types: list[str] = []
    collection_id: str | None = None
    status: str | None = None
    confidence_min: float | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    duration_min: float | None = None
    duration_max: float | None = None


class SearchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: str
    media_types: list[str] = []
    filters: SearchFilters = msgspec.field(default_factory=SearchFilters)
    limit: int = 20
    offset: int = 0
    include_segments: bool = True
    # Calibrated relevance cut-off in [0, 1]; None means the default floor, 0 returns weak hits too.
    min_score: float | None = None


class SegmentHit(msgspec.Struct, kw_only=True):
    """One matching segment: a time range for video and audio, a page for documents."""

    id: str
    segment_type: str | None
    sequence_number: int | None
    start_time: float | None
    end_time: float | None
    page: int | None
    score: float
    text_snippet: str | None
    thumbnail_url: str | None
    # Transcript words ({word, start, end}) or on-screen lines ({text, box}) that contain a query term.
    matches: list[dict[str, Any]] = []
    # Which legs matched and how: transcript/on-screen text/context/filename words, labels, similarities.
    explanation: dict[str, Any] = {}


class SearchResult(msgspec.Struct, kw_only=True):
    """One asset with the segments that matched."""

    id: str
    type: str
    score: float
    metadata: dict[str, Any]
    segments: list[SegmentHit]
    highlights: list[str]
    concepts: list[str]
    explanation: dict[str, Any] = {}  # the best segment's explanation


class SearchResponse(msgspec.Struct, kw_only=True):
    results: list[SearchResult]
    total: int
    took_ms: int
    offset: int
    limit: int
    understood: dict[str, Any]
