"""Where everything lives: LanceDB table names, object-store key prefixes and the column-family rules.

Writers and readers both import this module, so a table or a prefix is renamed in one place.
Row shapes live in `records`, the Kuzu DDL in `graph.schema`, the analytics Parquet layout in
`analytics.facts`.
"""

from __future__ import annotations

import re

# --- LanceDB tables -----------------------------------------------------------------------

ASSETS_TABLE = "assets"
SEGMENTS_TABLE = "segments"
COLLECTIONS_TABLE = "collections"
FEEDBACK_TABLE = "feedback"
SHOT_FRAMES_TABLE = "shot_frames"  # frames sampled per shot for near-duplicates (records.ShotFrameRecord)
SEARCH_PARAMS_TABLE = "search_params"  # tuned ANN parameters, one row per vector column

# Vectors live in one table per modality and embedding space, so a model with another dimension gets
# its own table instead of breaking the existing one: `vision__clip_vit_base_patch32`.
VECTOR_TABLE_SEPARATOR = "__"
VISION = "vision"
_SPACE_RE = re.compile(r"[^a-z0-9]+")


def vector_table_name(modality: str, space: str) -> str:
    slug = _SPACE_RE.sub("_", space.lower()).strip("_")
    return f"{modality}{VECTOR_TABLE_SEPARATOR}{slug}"


def is_vector_table(name: str, modality: str = VISION) -> bool:
    return name.startswith(f"{modality}{VECTOR_TABLE_SEPARATOR}")


def vector_space_slug(name: str, modality: str = VISION) -> str:
    """The embedding-space slug behind a vector table name (the slug loses punctuation)."""
    return name.removeprefix(f"{modality}{VECTOR_TABLE_SEPARATOR}")


# --- Object store -------------------------------------------------------------------------

LANDING_PREFIX = "landing/"  # the inbox: uploads, ingests and plain copies
SIDECAR_SUFFIX = ".dataflux.json"  # upload metadata beside a landing file
OBJECTS_PREFIX = "objects/"  # canonical originals and derived files, per asset
REANALYZE_PREFIX = "control/reanalyze/"  # re-analysis requests the landing sensor picks up
TOMBSTONE_PREFIX = "control/tombstones/"  # deleted assets, read by graph readers and the publisher
CONTRIB_PREFIX = "graph/contrib/"  # one file's graph contribution, written by its run
PUBLISHED_PREFIX = "published"  # published graph and analytics snapshots: published/{kind}/...
PUBLISHED_POINTER = "CURRENT.json"


def original_key(asset_id: str, extension: str) -> str:
    return f"{OBJECTS_PREFIX}{asset_id}/original{extension}"


def derived_key(asset_id: str, name: str) -> str:
    """Keyframes, thumbnails and other files derived from one asset."""
    return f"{OBJECTS_PREFIX}{asset_id}/derived/{name}"


def keyframe_key(asset_id: str, sequence_number: int) -> str:
    return derived_key(asset_id, f"keyframes/{sequence_number:05d}.jpg")


def sample_frame_key(asset_id: str, sequence_number: int, k: int) -> str:
    """The k-th other sampled frame of a shot (beside its keyframe), compared for near-duplicates."""
    return derived_key(asset_id, f"frames/{sequence_number:05d}-{k}.jpg")


def segment_thumbnail_key(asset_id: str, sequence_number: int) -> str:
    return derived_key(asset_id, f"thumbnails/{sequence_number:05d}.jpg")


def asset_thumbnail_key(asset_id: str) -> str:
    return derived_key(asset_id, "thumbnail.jpg")


def asset_prefix(asset_id: str) -> str:
    return f"{OBJECTS_PREFIX}{asset_id}/"


def tombstone_key(asset_id: str) -> str:
    return f"{TOMBSTONE_PREFIX}{asset_id}.json"


def contrib_key(asset_id: str) -> str:
    return f"{CONTRIB_PREFIX}{asset_id}.parquet"


def published_base(kind: str) -> str:
    return f"{PUBLISHED_PREFIX}/{kind}/"


def published_pointer_key(kind: str) -> str:
    return f"{PUBLISHED_PREFIX}/{kind}/{PUBLISHED_POINTER}"


# --- Dagster ------------------------------------------------------------------------------

# The dynamic partitions (one per media file, keyed by asset id). Named here because backups and
# `doctor` count them without importing Dagster code.
MEDIA_PARTITIONS = "media_files"
