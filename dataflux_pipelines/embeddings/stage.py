"""Segment embeddings: text and vision vectors, concepts and search text for many assets at once.

Inference is batched across all given assets (one model call per batch, not per file); each
table gets one commit per call, replacing exactly the rows of those assets.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import table_names
from dataflux_pipelines.duplicates import signature as image_signature
from dataflux_pipelines.embeddings.indexes import VECTOR_TABLE_PREFIXES, ensure_tables, open_or_create
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.lance_sql import in_list, literal, uuid_literal
from dataflux_pipelines.models.concepts import feature_concepts, merge_concepts, zero_shot_concepts
from dataflux_pipelines.models.imagenet_labels import Label, labels_for, search_words
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.models.visual import describe_images, measure_pixels

log = logging.getLogger(__name__)

_READ_COLUMNS = [
    "id",
    "asset_id",
    "segment_type",
    "media_type",
    "filename",
    "duration",
    "text",
    "transcript",
    "context",
    "keyframe_path",
    "sequence_number",
    "technical_features",
    "audio_features",
    "semantic_features",
]
_VISUAL_MEDIA = (records.MediaType.IMAGE.value, records.MediaType.VIDEO.value)


@dataclass
class EmbedOutcome:
    """What embedding did for one asset: counts, models, concepts and where the time went."""

    asset_id: str
    media_type: str | None = None
    segments: int = 0
    text_vectors: int = 0
    vision_vectors: int = 0
    text_model: str | None = None
    vision_model: str | None = None
    vision_space: str | None = None
    vision_table: str | None = None
    concepts: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # segment id -> labels
    load_s: float = 0.0  # this asset's share of loading the models (zero once they are loaded)
    decode_s: float = 0.0
    model_s: float = 0.0
    write_s: float = 0.0
    models: dict[str, str] = field(default_factory=dict)  # profile -> version, for the catalog's `models`
    error: dict[str, str] | None = None  # MediaError.to_dict() when this asset failed

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-safe values for Dagster metadata."""
        labels = sorted({label for seg in self.concepts.values() for label, _ in seg})
        return {
            "asset_id": self.asset_id,
            "media_type": self.media_type,
            "segments": self.segments,
            "text_vectors": self.text_vectors,
            "vision_vectors": self.vision_vectors,
            "text_model": self.text_model,
            "vision_model": self.vision_model,
            "vision_table": self.vision_table,
            "models": json.dumps(self.models, sort_keys=True),
            "concepts": labels[:50],
            "load_seconds": round(self.load_s, 4),
            "decode_seconds": round(self.decode_s, 4),
            "model_seconds": round(self.model_s, 4),
            "write_seconds": round(self.write_s, 4),
            "error": json.dumps(self.error) if self.error else None,
        }


def _json_dict(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


KEYFRAME_MAX_SIDE = 512  # both vision encoders work at 224 px or less; this bounds memory per image


def _decode_keyframe(key: str, image_loader: Callable[[str], bytes]) -> Image.Image:
    try:
        data = image_loader(key)
    except (FileNotFoundError, KeyError) as exc:
        raise MediaError(Reason.MISSING_SOURCE, f"keyframe {key!r} is missing from the object store") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (KEYFRAME_MAX_SIDE, KEYFRAME_MAX_SIDE))  # JPEG: decode at reduced scale
            rgb = img.convert("RGB")
        rgb.thumbnail((KEYFRAME_MAX_SIDE, KEYFRAME_MAX_SIDE), Image.Resampling.LANCZOS)
        return rgb
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"keyframe {key!r} cannot be decoded: {exc}") from exc


def search_text_for(row: dict[str, Any], labels: list[str]) -> str:
    """The text a segment is found by: its text, transcript, user context, filename and concepts."""
    parts = [row.get("text"), row.get("transcript"), row.get("context"), row.get("filename")]
    if labels:
        parts.append(", ".join(labels))
    return "\n".join(p.strip() for p in parts if p and p.strip())


def _read_segments(db: lancedb.DBConnection, asset_ids: list[str]) -> list[dict[str, Any]]:
    seg = db.open_table(layout.SEGMENTS_TABLE)
    where = in_list("asset_id", asset_ids, uuids=True)
    return seg.search().where(where).select(_READ_COLUMNS).limit(None).to_arrow().to_pylist()


def _share(total: float, part: int, whole: int) -> float:
    return total * part / whole if whole else 0.0


def embed_segments(
    db: lancedb.DBConnection,
    registry: ModelRegistry,
    asset_ids: list[str],
    image_loader: Callable[[str], bytes],
) -> dict[str, EmbedOutcome]:
    """Embed every segment of these assets and write vectors, concepts and search text.

    One model call per batch across all assets; `segments` gets one merge (only the embedding
    columns of these assets' rows) and the vision table one merge that also deletes rows of these
    assets that no longer exist. An asset whose keyframes cannot be read is reported in its
    outcome's `error` and left untouched.
    """
    ids = list(dict.fromkeys(a.lower() for a in asset_ids))
    for asset_id in ids:
        uuid_literal(asset_id, "asset_id")  # ids end up in where strings: refuse anything but a UUID
    started = time.perf_counter()
    vision = registry.vision  # loads the models on first use: once per registry, i.e. once per run
    text = registry.text
    image_model = registry.image_model  # EfficientNet-Lite0: labels + learned embedding (None if absent)
    load_s = time.perf_counter() - started
    tables = ensure_tables(db, vision.dim, vision.space)
    vision_table_name = layout.vector_table_name("vision", vision.space)
    learned_table_name = None
    if image_model is not None:
        learned_table_name = layout.vector_table_name("vision", image_model.space)
        tables.update(ensure_tables(db, image_model.dim, image_model.space))
    clip = registry.clip

    outcomes = {a: EmbedOutcome(asset_id=a) for a in ids}
    rows_by_asset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _read_segments(db, ids) if ids else []:
        rows_by_asset[row["asset_id"]].append(row)

    # 1+2. Decode keyframes and embed them in chunks that span assets: one model call per batch
    # across files, with memory bounded by the chunk rather than by the size of the run.
    chunk = max(1, getattr(vision.profile, "batch_size", 32)) * 4
    pending: list[tuple[dict[str, Any], Image.Image]] = []
    vector_of: dict[str, np.ndarray] = {}
    zero_shot_of: dict[str, list[tuple[str, float]]] = {}
    pixel_features: dict[str, dict[str, float]] = {}
    learned_of: dict[str, np.ndarray] = {}
    labels_of: dict[str, list[Label]] = {}
    hashes_of: dict[str, dict[str, Any]] = {}
    descriptor_of: dict[str, np.ndarray] = {}
    image_rows: list[dict[str, Any]] = []
    # Shots' other sampled frames, for near-duplicates across videos: (shot row, frame index, picture).
    pending_frames: list[tuple[dict[str, Any], int, Image.Image]] = []
    frame_rows: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        started = time.perf_counter()
        images = [image for _, image in pending]
        vectors = vision.embed_images(images)
        labels = zero_shot_concepts(registry, vectors) if clip is not None else []
        if image_model is not None:
            analysis = image_model.analyse(images)
            # The descriptor is what the vision table holds offline; with CLIP it is computed for hashing.
            descriptors = vectors if clip is None else describe_images(images)
            for i, (row, image) in enumerate(pending):
                learned_of[row["id"]] = analysis.embeddings[i]
                labels_of[row["id"]] = labels_for(analysis.probabilities[i])
                hashes_of[row["id"]] = image_signature(image, analysis.embeddings[i], descriptors[i]).hashes()
                descriptor_of[row["id"]] = np.asarray(descriptors[i], dtype=np.float32)
        elapsed = time.perf_counter() - started
        for i, (row, _) in enumerate(pending):
            vector_of[row["id"]] = vectors[i]
            if labels:
                zero_shot_of[row["id"]] = labels[i]
            outcomes[row["asset_id"]].model_s += elapsed / len(pending)
        pending.clear()

    def flush_frames() -> None:
        if not pending_frames or image_model is None:
            return
        started = time.perf_counter()
        images = [image for _, _, image in pending_frames]
        # Only the embedding: these frames get no labels, so the centre view (half the forward) is skipped.
        embeddings = image_model.embed_images(images)
        descriptors = describe_images(images)
        for i, (row, frame, image) in enumerate(pending_frames):
            sig = image_signature(image, embeddings[i], descriptors[i])
            frame_rows.append(_frame_row(row, frame, sig.embedding, sig.descriptor, sig.hashes()))
            outcomes[row["asset_id"]].model_s += (time.perf_counter() - started) / len(pending_frames)
        pending_frames.clear()

    for asset_id in ids:
        outcome = outcomes[asset_id]
        rows = rows_by_asset.get(asset_id, [])
        outcome.segments = len(rows)
        outcome.media_type = rows[0]["media_type"] if rows else None
        for row in rows:
            if not (row.get("keyframe_path") and row.get("media_type") in _VISUAL_MEDIA):
                continue
            started = time.perf_counter()
            try:
                image = _decode_keyframe(row["keyframe_path"], image_loader)
                samples = [
                    (frame, _decode_keyframe(key, image_loader))
                    for frame, key in _sample_frames(row)
                    if image_model is not None
                ]
            except MediaError as exc:
                outcome.error = exc.to_dict()
                log.warning("asset %s: %s", asset_id, exc)
                break
            finally:
                outcome.decode_s += time.perf_counter() - started
            pixel_features[row["id"]] = measure_pixels(image)
            pending.append((row, image))
            image_rows.append(row)
            pending_frames.extend((row, frame, picture) for frame, picture in samples)
            if len(pending) >= chunk:
                flush()
            if len(pending_frames) >= chunk:
                flush_frames()
    flush()
    flush_frames()
    for asset_id in ids:
        if outcomes[asset_id].error is not None:
            rows_by_asset.pop(asset_id, None)
    ok_ids = [a for a in ids if outcomes[a].error is None]
    ok = set(ok_ids)
    all_rows = [row for a in ok_ids for row in rows_by_asset.get(a, [])]
    vision_vectors = np.stack(list(vector_of.values())) if vector_of else None

    # 3. Concepts from measured features, then the text that carries them.
    search_texts: list[str] = []
    embed_texts: list[str] = []
    for row in all_rows:
        audio = _json_dict(row.get("audio_features"))
        features: dict[str, Any] = dict(pixel_features.get(row["id"], {}))
        if row.get("segment_type") == records.SegmentType.SHOT.value and row.get("duration"):
            features["shot_duration"] = row["duration"]
        # media.audio writes {"class": "speech"|"music"|"silence"|..., "confidence": 0..1}
        audio_class = audio.get("class") or audio.get("audio_class")
        if audio_class:
            features["audio_class"] = audio_class
            features["audio_class_confidence"] = audio.get(
                "confidence", audio.get("audio_class_confidence", 1.0)
            )
        features["text"] = " ".join(p for p in (row.get("text"), row.get("transcript")) if p)
        image_labels = labels_of.get(row["id"], [])
        concepts = merge_concepts(
            zero_shot_of.get(row["id"], []),
            [(label.name, label.confidence) for label in image_labels],
            feature_concepts(features, row.get("media_type") or ""),
        )
        outcomes[row["asset_id"]].concepts[row["id"]] = concepts
        # Synonyms and parent words of the ImageNet labels go into the text ("taxi", "cab", "car").
        words = list(dict.fromkeys([label for label, _ in concepts] + search_words(image_labels)))
        search_texts.append(search_text_for(row, words))
        # The text vector leaves the ImageNet labels out: the labels leg of search judges them with their
        # calibrated confidence, and MiniLM would turn a wrong low-confidence label into a strong match.
        label_names = {label.name for label in image_labels}
        embed_texts.append(search_text_for(row, [c for c, _ in concepts if c not in label_names]))

    started = time.perf_counter()
    to_embed = [i for i, t in enumerate(embed_texts) if t]
    text_vectors = text.embed_texts([embed_texts[i] for i in to_embed]) if to_embed else None
    text_s = time.perf_counter() - started
    for name, vectors in (("text", text_vectors), ("vision", vision_vectors)):
        if vectors is not None and not np.isfinite(vectors).all():
            raise MediaError(Reason.INTERNAL_ERROR, f"the {name} model produced non-finite vectors")
    text_vector_of: dict[int, np.ndarray] = (
        {i: text_vectors[j] for j, i in enumerate(to_embed)} if text_vectors is not None else {}
    )

    # 4. Writes: one commit per table for all assets.
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    if all_rows:
        update = pa.Table.from_pydict(
            {
                "id": [r["id"] for r in all_rows],
                "text_vector": [
                    text_vector_of[i].tolist() if i in text_vector_of else None for i in range(len(all_rows))
                ],
                "text_model": [text.version] * len(all_rows),
                "concepts": [
                    [label for label, _ in outcomes[r["asset_id"]].concepts[r["id"]]] for r in all_rows
                ],
                "search_text": search_texts,
                # Confidences travel with the labels, for the graph's TAGGED edges.
                "semantic_features": [
                    json.dumps(
                        {
                            **_json_dict(r.get("semantic_features")),
                            "concepts": {
                                label: round(float(conf), 4)
                                for label, conf in outcomes[r["asset_id"]].concepts[r["id"]]
                            },
                            **_image_label_fields(r["id"], labels_of, hashes_of, image_model),
                        },
                        sort_keys=True,
                    )
                    for r in all_rows
                ],
            },
            schema=pa.schema(
                [
                    records.SEGMENTS_SCHEMA.field(n)
                    for n in (
                        "id",
                        "text_vector",
                        "text_model",
                        "concepts",
                        "search_text",
                        "semantic_features",
                    )
                ]
            ),
        )
        # Segments with no text at all keep a null vector; "null" lets those through.
        merge = tables[layout.SEGMENTS_TABLE].merge_insert("id").when_matched_update_all()
        merge.execute(update, on_bad_vectors="null")
    segments_write_s = time.perf_counter() - started

    started = time.perf_counter()
    vision_rows = [r for r in image_rows if r["asset_id"] in ok]
    keep = {vision_table_name} | ({learned_table_name} if learned_table_name else set())
    if ok_ids:
        _replace_vision_rows(
            db,
            tables[vision_table_name],
            vision_table_name,
            ok_ids,
            vision_rows,
            vector_of,
            vision,
            now,
            keep,
        )
        if learned_table_name is not None:
            learned_rows = [r for r in vision_rows if r["id"] in learned_of]
            _replace_vision_rows(
                db,
                tables[learned_table_name],
                learned_table_name,
                ok_ids,
                learned_rows,
                learned_of,
                image_model,
                now,
                keep,
            )
        if image_model is not None:
            _replace_shot_frames(
                db,
                image_model,
                ok_ids,
                ok,
                vision_rows,
                frame_rows,
                learned_of,
                descriptor_of,
                hashes_of,
                now,
            )
    vision_write_s = time.perf_counter() - started

    # 5. Per-asset figures: batched model and write time is shared out by segment and image counts.
    n_rows = len(all_rows)
    # Counted in one pass each: a run's batch holds up to a thousand files and several thousand rows.
    images_of = Counter(r["asset_id"] for r in vision_rows)
    text_vectors_of = Counter(r["asset_id"] for i, r in enumerate(all_rows) if i in text_vector_of)
    for asset_id in ok_ids:
        outcome = outcomes[asset_id]
        rows = rows_by_asset.get(asset_id, [])
        n_img = images_of[asset_id]
        outcome.text_vectors = text_vectors_of[asset_id]
        outcome.vision_vectors = n_img
        outcome.text_model = text.version
        outcome.models = {"text": text.version}
        if n_img and image_model is not None:
            outcome.models["image-labels"] = image_model.version
        if n_img:
            outcome.models["vision"] = vision.version
            outcome.vision_model = vision.version
            outcome.vision_space = vision.space
            outcome.vision_table = vision_table_name
        outcome.load_s = _share(load_s, 1, len(ok_ids))
        outcome.model_s += _share(text_s, len(rows), n_rows)
        outcome.write_s = _share(segments_write_s, len(rows), n_rows) + _share(
            vision_write_s, len(rows), n_rows
        )
    return outcomes


def _replace_vision_rows(
    db: lancedb.DBConnection,
    tbl: Any,
    table_name: str,
    asset_ids: list[str],
    rows: list[dict[str, Any]],
    vector_of: dict[str, np.ndarray],
    vision: Any,
    now: dt.datetime,
    keep: set[str] | None = None,
) -> None:
    """Exactly these rows for these assets in this space; none of theirs in vision spaces not in `keep`."""
    where = in_list("asset_id", asset_ids, uuids=True)
    if rows:
        data = pa.Table.from_pydict(
            {
                "segment_id": [r["id"] for r in rows],
                "asset_id": [r["asset_id"] for r in rows],
                "media_type": [r.get("media_type") for r in rows],
                "segment_type": [r.get("segment_type") for r in rows],
                "vector": [vector_of[r["id"]].tolist() for r in rows],
                "model": [_model_name(vision)] * len(rows),
                "model_version": [vision.version] * len(rows),
                "created_at": [now] * len(rows),
            },
            schema=records.vector_table_schema(vision.dim),
        )
        (
            tbl.merge_insert("segment_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(where)
            .execute(data)
        )
    elif tbl.count_rows(where):
        tbl.delete(where)
    for name in table_names(db):
        if layout.is_vector_table(name) and name != table_name and name not in (keep or set()):
            other = db.open_table(name)
            if other.count_rows(where):
                other.delete(where)


def _sample_frames(row: dict[str, Any]) -> list[tuple[int, str]]:
    """(frame index, object key) of a shot's other sampled frames, as the video stage stored them."""
    if row.get("segment_type") != records.SegmentType.SHOT.value:
        return []
    technical = _json_dict(row.get("technical_features"))
    return [
        (int(frame), layout.sample_frame_key(row["asset_id"], int(row["sequence_number"]), k))
        for k, frame in enumerate(technical.get("sample_frames") or [])
    ]


def _frame_row(
    row: dict[str, Any], frame: int, vector: np.ndarray, descriptor: np.ndarray, signature: dict[str, Any]
) -> dict[str, Any]:
    fps = _json_dict(row.get("technical_features")).get("fps")
    return {
        "id": f"{row['id']}:{frame}",
        "segment_id": row["id"],
        "asset_id": row["asset_id"],
        "frame": frame,
        "time": round(frame / float(fps), 4) if fps else None,
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "descriptor": np.asarray(descriptor, dtype=np.float32).tolist(),
        "signature": json.dumps(signature, sort_keys=True),
    }


def _replace_shot_frames(
    db: lancedb.DBConnection,
    model: Any,
    asset_ids: list[str],
    ok: set[str],
    keyframe_rows: list[dict[str, Any]],
    sample_rows: list[dict[str, Any]],
    learned_of: dict[str, np.ndarray],
    descriptor_of: dict[str, np.ndarray],
    hashes_of: dict[str, dict[str, Any]],
    now: dt.datetime,
) -> None:
    """Exactly the sampled frames (keyframe included) of these assets' shots in `shot_frames`, one commit."""
    rows = [
        _frame_row(
            r,
            int(_json_dict(r.get("technical_features")).get("keyframe_frame") or 0),
            learned_of[r["id"]],
            descriptor_of[r["id"]],
            hashes_of[r["id"]],
        )
        for r in keyframe_rows
        if r.get("segment_type") == records.SegmentType.SHOT.value and r["id"] in learned_of
    ]
    rows += [r for r in sample_rows if r["asset_id"] in ok]
    schema = records.shot_frames_schema(model.dim)
    tbl = open_or_create(db, layout.SHOT_FRAMES_TABLE, schema)
    where = in_list("asset_id", asset_ids, uuids=True)
    if not rows:
        if tbl.count_rows(where):
            tbl.delete(where)
        return
    for r in rows:
        r["model_version"] = model.version
        r["created_at"] = now
    (
        tbl.merge_insert("id")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(where)
        .execute(pa.Table.from_pylist(rows, schema=schema))
    )


def _model_name(model: Any) -> str:
    profile = getattr(model, "profile", None)
    return profile.model_id_or_path if profile is not None else model.space


def _image_label_fields(
    segment_id: str, labels_of: dict[str, list[Label]], hashes_of: dict[str, dict[str, Any]], model: Any
) -> dict[str, Any]:
    """ImageNet labels (name, confidence, classes) and perceptual hashes, for `semantic_features`."""
    if segment_id not in labels_of:
        return {}
    return {
        "labels": [
            # A parent word ("car", "animal") covers many classes: it is marked, not enumerated.
            {"name": label.name, "confidence": label.confidence}
            | ({"class": label.classes[0]} if len(label.classes) == 1 else {"parent": True})
            for label in labels_of[segment_id]
        ],
        "label_model": model.version,
        "image_hashes": hashes_of.get(segment_id, {}),
    }


def delete_asset_vectors(db: lancedb.DBConnection, asset_id: str) -> dict[str, int]:
    """Remove one asset from every vector table; returns rows deleted per table."""
    where = f"asset_id = {uuid_literal(asset_id, 'asset_id')}"
    deleted: dict[str, int] = {}
    for name in table_names(db):
        if name.startswith(VECTOR_TABLE_PREFIXES) or name == layout.SHOT_FRAMES_TABLE:
            tbl = db.open_table(name)
            count = tbl.count_rows(where)
            if count:
                tbl.delete(where)
                deleted[name] = count
    return deleted


def stale_assets(db: lancedb.DBConnection, registry: ModelRegistry) -> list[str]:
    """Assets whose stored embeddings were not made by the current models for their media type.

    Documents and audio: the text model; images and videos: text and vision (every segment with
    a keyframe needs a row from the current vision model). Never-embedded segments count as stale.
    """
    names = table_names(db)
    if layout.SEGMENTS_TABLE not in names:
        return []
    text_version = registry.text.version
    vision = registry.vision
    seg = db.open_table(layout.SEGMENTS_TABLE)
    rows = (
        seg.search()
        .select(["id", "asset_id", "media_type", "keyframe_path", "text_model"])
        .limit(None)
        .to_arrow()
        .to_pylist()
    )
    current_vision: set[str] = set()
    vision_name = layout.vector_table_name("vision", vision.space)
    if vision_name in names:
        vt = db.open_table(vision_name)
        current_vision = set(
            vt.search()
            .where(f"model_version = {literal(vision.version)}")
            .select(["segment_id"])
            .limit(None)
            .to_arrow()["segment_id"]
            .to_pylist()
        )
    image_model = registry.image_model
    current_learned: set[str] | None = None
    if image_model is not None:
        learned_name = layout.vector_table_name("vision", image_model.space)
        current_learned = set()
        if learned_name in names:
            current_learned = set(
                db.open_table(learned_name)
                .search()
                .where(f"model_version = {literal(image_model.version)}")
                .select(["segment_id"])
                .limit(None)
                .to_arrow()["segment_id"]
                .to_pylist()
            )
    stale: set[str] = set()
    for row in rows:
        needs_vision = row["media_type"] in _VISUAL_MEDIA and bool(row.get("keyframe_path"))
        missing_learned = current_learned is not None and row["id"] not in current_learned
        if row["text_model"] != text_version or (
            needs_vision and (row["id"] not in current_vision or missing_learned)
        ):
            stale.add(row["asset_id"])
    return sorted(stale)
