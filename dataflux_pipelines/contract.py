"""The one contract for DataFlux's stores: Lance table schemas, object-store layout, status values.

Writers (Dagster assets) and readers (API, MCP) both import this module, so a column is
renamed in one place. Kuzu DDL lives in `dataflux_pipelines.graph.schema`, the analytics
Parquet layout in `dataflux_pipelines.analytics.facts`; both follow the same rule.
"""

from __future__ import annotations

import re
from enum import StrEnum

import pyarrow as pa

TEXT_DIM = 384  # all-MiniLM-L6-v2


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


# --- LanceDB tables -----------------------------------------------------------------------

ASSETS_TABLE = "assets"
SEGMENTS_TABLE = "segments"
COLLECTIONS_TABLE = "collections"
FEEDBACK_TABLE = "feedback"

ASSETS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("filename", pa.string()),
        pa.field("file_hash", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("mime_type", pa.string()),
        pa.field("media_type", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason_code", pa.string()),
        pa.field("reason_message", pa.string()),
        pa.field("landing_key", pa.string()),
        pa.field("storage_path", pa.string()),
        pa.field("thumbnail_path", pa.string()),
        pa.field("context", pa.string()),
        pa.field("priority", pa.int32()),
        pa.field("collection_id", pa.string()),
        pa.field("duration", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("segment_count", pa.int32()),
        pa.field("confidence_score", pa.float64()),
        # JSON objects: the technical probe, per-asset summaries (pacing, colour) and models used
        pa.field("metadata", pa.string()),
        pa.field("summary", pa.string()),
        pa.field("models", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("segment_type", pa.string()),
        pa.field("sequence_number", pa.int32()),
        pa.field("media_type", pa.string()),
        pa.field("mime_type", pa.string()),
        pa.field("filename", pa.string()),
        pa.field("collection_id", pa.string()),
        pa.field("start_time", pa.float64()),
        pa.field("end_time", pa.float64()),
        pa.field("duration", pa.float64()),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),
        pa.field("page", pa.int32()),
        pa.field("char_start", pa.int64()),
        pa.field("char_end", pa.int64()),
        pa.field("confidence_score", pa.float64()),
        pa.field("text", pa.string()),  # document chunk text
        pa.field("transcript", pa.string()),  # speech transcript of the span
        # transcript and text segments: the language, the words with their times (transcripts) or the
        # lines with their boxes (on-screen text) as JSON, and the model version that produced them
        pa.field("language", pa.string()),
        pa.field("words", pa.string()),  # JSON list
        pa.field("source_model", pa.string()),
        pa.field("context", pa.string()),  # user-provided context of the asset
        pa.field("concepts", pa.list_(pa.string())),
        # everything above that is text, joined: the column carrying the native FTS index
        pa.field("search_text", pa.string()),
        pa.field("keyframe_path", pa.string()),
        pa.field("thumbnail_path", pa.string()),
        pa.field("visual_features", pa.string()),  # JSON
        pa.field("style_features", pa.string()),  # JSON
        pa.field("technical_features", pa.string()),  # JSON
        pa.field("audio_features", pa.string()),  # JSON
        pa.field("semantic_features", pa.string()),  # JSON
        pa.field("text_vector", pa.list_(pa.float32(), TEXT_DIM)),
        pa.field("text_model", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

COLLECTIONS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("auto_generated", pa.bool_()),
        pa.field("asset_ids", pa.list_(pa.string())),  # members of auto-generated collections
        pa.field("concepts", pa.list_(pa.string())),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("entity_id", pa.string()),
        pa.field("feedback", pa.bool_()),
        pa.field("details", pa.string()),
        pa.field("query", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

_SPACE_RE = re.compile(r"[^a-z0-9]+")


def vector_table_name(modality: str, space: str) -> str:
    """Vectors live in one table per embedding space, so a model with another dimension
    gets its own table instead of breaking the existing one: `vision__clip_vit_base_patch32`."""
    slug = _SPACE_RE.sub("_", space.lower()).strip("_")
    return f"{modality}__{slug}"


def vector_table_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("segment_id", pa.string(), nullable=False),
            pa.field("asset_id", pa.string(), nullable=False),
            pa.field("media_type", pa.string()),
            pa.field("segment_type", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("model", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("created_at", pa.timestamp("us", tz="UTC")),
        ]
    )


# --- Object store layout ------------------------------------------------------------------

LANDING_PREFIX = "landing/"
OBJECTS_PREFIX = "objects/"
SIDECAR_SUFFIX = ".dataflux.json"  # upload metadata beside a landing file


def original_key(asset_id: str, extension: str) -> str:
    return f"{OBJECTS_PREFIX}{asset_id}/original{extension}"


def derived_key(asset_id: str, name: str) -> str:
    """Keyframes, thumbnails and other files derived from one asset."""
    return f"{OBJECTS_PREFIX}{asset_id}/derived/{name}"


def asset_prefix(asset_id: str) -> str:
    return f"{OBJECTS_PREFIX}{asset_id}/"
