"""The stored rows, declared once: assets, segments, collections, feedback and vectors.

Each record is a dataclass; its LanceDB (Arrow) schema is derived by `arrow_schema`, and the REST
(msgspec) and MCP (pydantic) response shapes are derived from the same fields (`public_fields`),
so a field added here appears in the store, the API and the MCP tools at once. A field marked
`internal` stays in the store only (vectors, storage paths, the full-text column).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

TEXT_DIM = 384  # all-MiniLM-L6-v2


def vector_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of fixed-size vectors (LanceDB stores and searches only those), none null, as a float32
    matrix with one row per vector, without going through Python lists. The matrix is its own copy
    (writable; Arrow's zero-copy view is read-only)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = np.array(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(len(array), array.type.list_size)


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class MediaType(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"
    DOCUMENT = "document"


class SegmentType(StrEnum):
    SHOT = "shot"  # a video shot
    AUDIO = "audio"  # an audio passage (audio files and soundtracks)
    IMAGE = "image"  # a whole image, or a frame of an animated image
    TILE = "tile"  # a tile of a large image
    PAGE = "page"  # a PDF page chunk
    CHUNK = "chunk"  # a text chunk of txt/md/html
    TRANSCRIPT = "transcript"  # what is said or sung over a time span (audio files and soundtracks)
    TEXT = "text"  # text read in a picture: an image, a video frame span, or a scanned PDF page


def column(
    default: Any = None,
    *,
    arrow: pa.DataType | None = None,
    internal: bool = False,
    nullable: bool = True,
    description: str = "",
) -> Any:
    """A record field with its storage facts: an explicit Arrow type, internal to the store, nullability."""
    meta = {"arrow": arrow, "internal": internal, "nullable": nullable, "description": description}
    if isinstance(default, list | dict):
        factory = type(default)
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def vector(dim: int, *, description: str = "") -> Any:
    return column(arrow=pa.list_(pa.float32(), dim), internal=True, description=description)


INT32 = pa.int32()
_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclasses.dataclass(kw_only=True)
class AssetRecord:
    """One media file: identity, status (with the reason when it failed), technical facts, summaries."""

    id: str = column(nullable=False)
    filename: str | None = None
    file_hash: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    media_type: str | None = None
    status: str | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    landing_key: str | None = column(internal=True)
    storage_path: str | None = None
    thumbnail_path: str | None = None
    context: str | None = None
    priority: int | None = column(arrow=INT32)
    collection_id: str | None = None
    duration: float | None = None
    width: int | None = column(arrow=INT32)
    height: int | None = column(arrow=INT32)
    segment_count: int | None = column(arrow=INT32)
    confidence_score: float | None = None
    attempts: int | None = column(arrow=INT32, description="runs that died while processing this file")
    # JSON objects: the technical probe, per-asset summaries (pacing, colour) and the models used
    metadata: dict[str, Any] = column({})
    summary: dict[str, Any] = column({})
    models: dict[str, Any] = column({})
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclasses.dataclass(kw_only=True)
class SegmentRecord:
    """One searchable part of an asset: a shot, an audio passage, an image (tile), a page or a chunk."""

    id: str = column(nullable=False)
    asset_id: str = column(nullable=False)
    segment_type: str | None = None
    sequence_number: int | None = column(arrow=INT32)
    media_type: str | None = None
    mime_type: str | None = column(internal=True)
    filename: str | None = column(internal=True)
    collection_id: str | None = column(internal=True)
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    page: int | None = column(arrow=INT32)
    char_start: int | None = None
    char_end: int | None = None
    confidence_score: float | None = None
    text: str | None = column(description="document chunk text")
    transcript: str | None = column(description="speech transcript of the span")
    # transcript and text segments: the language, the words with their times (transcripts) or the
    # lines with their boxes (on-screen text), and the version of the model that read them
    language: str | None = None
    words: list[dict[str, Any]] = column(
        [],
        arrow=pa.string(),
        description="JSON list: transcript words {word, start, end, p} or on-screen lines {text, box, confidence}",
    )
    source_model: str | None = None
    context: str | None = column(internal=True, description="user-provided context of the asset")
    concepts: list[str] | None = None
    # everything above that is text, joined: the column carrying the native FTS index
    search_text: str | None = column(internal=True)
    keyframe_path: str | None = column(internal=True)
    thumbnail_path: str | None = column(internal=True)
    visual_features: dict[str, Any] = column({})
    style_features: dict[str, Any] = column({})
    technical_features: dict[str, Any] = column({})
    audio_features: dict[str, Any] = column({})
    semantic_features: dict[str, Any] = column({})
    text_vector: list[float] | None = vector(TEXT_DIM)
    text_model: str | None = None
    created_at: dt.datetime | None = None


@dataclasses.dataclass(kw_only=True)
class CollectionRecord:
    """A named set of assets; auto-generated ones list their members and the concepts that name them."""

    id: str = column(nullable=False)
    name: str | None = None
    description: str | None = None
    auto_generated: bool | None = None
    asset_ids: list[str] | None = column(internal=True, description="members of auto-generated collections")
    concepts: list[str] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclasses.dataclass(kw_only=True)
class FeedbackRecord:
    """A user's judgement of a hit, an asset or a collection (relevance, accuracy or quality)."""

    id: str = column(nullable=False)
    type: str | None = None
    entity_id: str | None = None
    feedback: bool | None = None
    details: str | None = None
    query: str | None = None
    created_at: dt.datetime | None = None


@dataclasses.dataclass(kw_only=True)
class VectorRecord:
    """One segment's vector in one embedding space (a `vision__<space>` table), with its model version."""

    segment_id: str = column(nullable=False)
    asset_id: str = column(nullable=False)
    media_type: str | None = None
    segment_type: str | None = None
    # the dimension is the space's: `vector_table_schema(dim)` sets it
    vector: list[float] | None = column(arrow=pa.list_(pa.float32()))
    model: str | None = None
    model_version: str | None = None
    created_at: dt.datetime | None = None


@dataclasses.dataclass(kw_only=True)
class ShotFrameRecord:
    """One frame sampled from a video shot (its keyframe or another), as the near-duplicate check compares
    it: the learned vector, the visual-offline descriptor and the signature (hashes, grey thumbnails, flat)."""

    id: str = column(nullable=False)  # "{segment_id}:{frame}"
    segment_id: str = column(nullable=False)
    asset_id: str = column(nullable=False)
    frame: int | None = None
    time: float | None = None
    # the learned space's dimension: `shot_frames_schema(dim)` sets it
    vector: list[float] | None = column(arrow=pa.list_(pa.float32()))
    descriptor: list[float] | None = column(arrow=pa.list_(pa.float32()))
    signature: dict[str, Any] = column({})
    model_version: str | None = None
    created_at: dt.datetime | None = None


# --- derived shapes -----------------------------------------------------------------------


def _hints(record: type) -> dict[str, Any]:
    return typing.get_type_hints(record)


def _base_type(hint: Any) -> Any:
    """`str | None` → str; `list[str] | None` → list[str]."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _arrow_type(hint: Any) -> pa.DataType:
    base = _base_type(hint)
    origin = typing.get_origin(base)
    if base is str:
        return pa.string()
    if base is bool:
        return pa.bool_()
    if base is int:
        return pa.int64()
    if base is float:
        return pa.float64()
    if base is dt.datetime:
        return _TIMESTAMP
    if origin is dict:
        return pa.string()  # JSON text
    if origin is list and typing.get_args(base) == (str,):
        return pa.list_(pa.string())
    raise TypeError(f"no Arrow type for {hint!r}: give the column an explicit `arrow=` type")


def arrow_schema(record: type) -> pa.Schema:
    """The LanceDB schema of a record, in field order."""
    hints = _hints(record)
    fields = []
    for f in dataclasses.fields(record):
        arrow = f.metadata.get("arrow") or _arrow_type(hints[f.name])
        fields.append(pa.field(f.name, arrow, nullable=f.metadata.get("nullable", True)))
    return pa.schema(fields)


def json_columns(record: type) -> tuple[str, ...]:
    """Object-valued fields, stored as JSON strings."""
    hints = _hints(record)
    return tuple(
        f.name for f in dataclasses.fields(record) if typing.get_origin(_base_type(hints[f.name])) is dict
    )


def public_fields(record: type) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of every field the API and MCP show: all but the internal ones.

    Every public field is optional in the response shapes except the ids, so a reader of an older
    row (before a column existed) still gets a valid answer.
    """
    hints = _hints(record)
    out: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(record):
        if f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        if not f.metadata.get("nullable", True):
            out.append((f.name, _base_type(hint), dataclasses.MISSING))
        elif f.default_factory is not dataclasses.MISSING:
            out.append((f.name, hint, f.default_factory()))
        else:
            out.append((f.name, hint, None))
    return out


def vector_table_schema(dim: int) -> pa.Schema:
    schema = arrow_schema(VectorRecord)
    index = schema.get_field_index("vector")
    return schema.set(index, pa.field("vector", pa.list_(pa.float32(), dim)))


def shot_frames_schema(dim: int) -> pa.Schema:
    schema = arrow_schema(ShotFrameRecord)
    index = schema.get_field_index("vector")
    return schema.set(index, pa.field("vector", pa.list_(pa.float32(), dim)))


ASSETS_SCHEMA = arrow_schema(AssetRecord)
SEGMENTS_SCHEMA = arrow_schema(SegmentRecord)
COLLECTIONS_SCHEMA = arrow_schema(CollectionRecord)
FEEDBACK_SCHEMA = arrow_schema(FeedbackRecord)
ASSET_JSON_COLUMNS = json_columns(AssetRecord)
SEGMENT_JSON_COLUMNS = json_columns(SegmentRecord)
