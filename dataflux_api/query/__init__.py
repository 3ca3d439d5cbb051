"""The framework-free query service shared by REST and MCP: query understanding, hybrid search, similar."""

from dataflux_api.query.models import SearchFilters, SearchRequest, SearchResponse, SearchResult, SegmentHit
from dataflux_api.query.parse import ParsedQuery, parse_query
from dataflux_api.query.search import SearchEngine

__all__ = [
    "ParsedQuery",
    "SearchEngine",
    "SearchFilters",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "SegmentHit",
    "parse_query",
]
