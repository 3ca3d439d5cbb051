"""The URLs DataFlux hands out for assets and segments (one place for the REST prefix and its paths)."""

from __future__ import annotations

API_PREFIX = "/api/v1"


def asset_url(asset_id: str) -> str:
    return f"{API_PREFIX}/assets/{asset_id}"


def asset_thumbnail_url(asset_id: str) -> str:
    return f"{API_PREFIX}/assets/{asset_id}/thumbnail"


def asset_download_url(asset_id: str) -> str:
    return f"{API_PREFIX}/assets/{asset_id}/download"


def segment_thumbnail_url(segment_id: str) -> str:
    return f"{API_PREFIX}/segments/{segment_id}/thumbnail"


def segment_keyframe_url(segment_id: str) -> str:
    return f"{API_PREFIX}/segments/{segment_id}/keyframe"
