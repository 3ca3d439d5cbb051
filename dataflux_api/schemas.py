"""Request and response shapes of the REST API (msgspec Structs, split into read and create shapes).

Asset and segment shapes are derived from `dataflux_pipelines.records` (`dataflux_api.shapes`).

Search shapes live with the query service in `dataflux_api.query.models`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile

from dataflux_api.shapes import FieldSpec, record_fields, rest_struct
from dataflux_pipelines.records import AssetRecord, SegmentRecord

Priority = Annotated[int, msgspec.Meta(ge=1, le=10, description="1 (first) to 10 (last)")]


# --- read shapes ----------------------------------------------------------------------------


# Links the API adds to the stored rows.
SEGMENT_LINKS: list[FieldSpec] = [("keyframe_url", str | None, None), ("thumbnail_url", str | None, None)]
ASSET_LINKS: list[FieldSpec] = [("thumbnail_url", str | None, None), ("download_url", str | None, None)]
# Fields only the asset detail carries (the list stays light).
ASSET_DETAIL_ONLY = ("storage_path", "thumbnail_path", "metadata", "summary", "models")

SEGMENT_FIELDS = record_fields(SegmentRecord) + SEGMENT_LINKS
# An asset detail carries one page of segments (`segment_offset`, `segment_limit` on the request).
SEGMENT_PAGE_FIELDS: list[FieldSpec] = [("segments_total", int | None, None), ("segment_offset", int, 0)]
ASSET_FIELDS = record_fields(AssetRecord, exclude=ASSET_DETAIL_ONLY) + ASSET_LINKS

if TYPE_CHECKING:
    # The shapes are built at run time from the records; to a type checker they are Structs whose
    # fields are looked up dynamically.
    class _Derived(msgspec.Struct):
        def __getattr__(self, name: str) -> Any: ...

    class Segment(_Derived): ...

    class Asset(_Derived): ...

    class AssetDetail(Asset): ...

else:
    Segment = rest_struct("Segment", SEGMENT_FIELDS)
    Asset = rest_struct("Asset", ASSET_FIELDS)
    AssetDetail = rest_struct(
        "AssetDetail",
        [f for f in record_fields(AssetRecord) if f[0] in ASSET_DETAIL_ONLY]
        + [("processing_status", str | None, None)]
        + SEGMENT_PAGE_FIELDS
        + [("segments", list[Segment], [])],
        bases=(Asset,),
    )


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
    filename: str | None = None


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
