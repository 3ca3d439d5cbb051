"""Request and response shapes of the REST API (msgspec Structs, split into read and create shapes).

Search shapes live with the query service in `dataflux_api.query.models`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile

Priority = Annotated[int, msgspec.Meta(ge=1, le=10, description="1 (first) to 10 (last)")]


# --- read shapes ----------------------------------------------------------------------------


class Segment(msgspec.Struct, kw_only=True):
    id: str
    asset_id: str
    segment_type: str | None = None
    sequence_number: int | None = None
    media_type: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    confidence_score: float | None = None
    text: str | None = None
    transcript: str | None = None
    concepts: list[str] | None = None
    visual_features: dict[str, Any] = {}
    semantic_features: dict[str, Any] = {}
    style_features: dict[str, Any] = {}
    technical_features: dict[str, Any] = {}
    audio_features: dict[str, Any] = {}
    text_model: str | None = None
    keyframe_url: str | None = None
    thumbnail_url: str | None = None
    created_at: dt.datetime | None = None


class Asset(msgspec.Struct, kw_only=True):
    id: str
    filename: str | None = None
    file_hash: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    media_type: str | None = None
    status: str | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    context: str | None = None
    priority: int | None = None
    collection_id: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    segment_count: int | None = None
    confidence_score: float | None = None
    thumbnail_url: str | None = None
    download_url: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class AssetDetail(Asset, kw_only=True):
    storage_path: str | None = None
    thumbnail_path: str | None = None
    processing_status: str | None = None
    metadata: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    models: dict[str, Any] = {}
    segments: list[Segment] = []


class Pagination(msgspec.Struct):
    page: int
    limit: int
    total: int
    pages: int


class AssetList(msgspec.Struct):
    assets: list[Asset]
    pagination: Pagination


class UploadReceipt(msgspec.Struct):
    id: str
    status: str
    eta_seconds: int
    filename: str
    url: str


class AnalyzeReceipt(msgspec.Struct):
    id: str
    status: str
    request_key: str
    force: bool
    priority: int


class Collection(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str | None = None
    asset_count: int = 0
    auto_generated: bool = False
    concepts: list[str] = []
    created_at: dt.datetime | None = None


class FeedbackReceipt(msgspec.Struct):
    id: str
    type: str
    entity_id: str
    feedback: bool
    created_at: dt.datetime


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    field: str | None
    status: int


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail


# --- create shapes --------------------------------------------------------------------------


class UploadForm(msgspec.Struct, kw_only=True):
    file: UploadFile
    context: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    priority: Priority = 5
    collection_id: str | None = None


class AnalyzeRequest(msgspec.Struct, kw_only=True):
    force: bool = False
    priority: Priority | None = None


class SimilarRequest(msgspec.Struct, kw_only=True):
    entity_id: str
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.75
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    media_types: list[str] = []


class CollectionCreate(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=5_000)] | None = None
    auto_generated: bool = False


class FeedbackCreate(msgspec.Struct, kw_only=True):
    type: Literal["relevance", "accuracy", "quality"]
    entity_id: str
    feedback: bool
    details: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    query: Annotated[str, msgspec.Meta(max_length=2_000)] | None = None
