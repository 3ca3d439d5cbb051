"""A small media library written straight into real Lance tables, for graph, collection and analytics tests."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash, segment_id_for
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_DIM, VISUAL_OFFLINE_SPACE, describe_image

VISION_TABLE = layout.vector_table_name("vision", VISUAL_OFFLINE_SPACE)


def picture(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A picture of its own palette and layout: gradient background, shapes and a little noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    colours = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(5)]
    ramp = np.linspace(0, 1, h)[:, None, None]
    bg = np.array(colours[0], float) * (1 - ramp) + np.array(colours[1], float) * ramp
    img = Image.fromarray(bg.repeat(w, axis=1).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        box = [x0, y0, x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))]
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colours[int(rng.integers(2, 5))])
    noise = rng.normal(0, 5, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, float) + noise, 0, 255).astype(np.uint8), "RGB")


def text_vector(seed: int, base: np.ndarray | None = None, mix: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=records.TEXT_DIM)
    if base is not None:
        v = mix * np.asarray(base) + (1 - mix) * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32).tolist()


@dataclass
class SegmentSpec:
    image: Image.Image | None = None
    concepts: dict[str, float] = field(default_factory=dict)
    text: str | None = None
    text_vector: list[float] | None = None


def add_asset(
    catalog: Catalog,
    name: str,
    media_type: str,
    segments: list[SegmentSpec],
    *,
    status: str = "completed",
    reason_code: str | None = None,
    collection_id: str | None = None,
    duration: float | None = None,
    file_size: int = 1000,
) -> tuple[str, list[str]]:
    """Catalog row, segment rows and vision vectors of one asset; returns (asset_id, segment ids)."""
    asset_id = asset_id_for_hash(name.encode().hex().ljust(64, "0")[:64])
    kind = {"video": "shot", "image": "image", "document": "chunk", "audio": "audio"}[media_type]
    seg_rows, vec_rows, seg_ids = [], [], []
    now = dt.datetime.now(dt.UTC)
    for i, spec in enumerate(segments):
        sid = segment_id_for(asset_id, kind, i)
        seg_ids.append(sid)
        seg_rows.append(
            {
                "id": sid,
                "asset_id": asset_id,
                "segment_type": kind,
                "sequence_number": i,
                "media_type": media_type,
                "filename": name,
                "start_time": float(i * 2) if media_type in ("video", "audio") else None,
                "end_time": float(i * 2 + 2) if media_type in ("video", "audio") else None,
                "duration": 2.0 if media_type in ("video", "audio") else None,
                "page": i + 1 if media_type == "document" else None,
                "text": spec.text,
                "concepts": sorted(spec.concepts),
                "semantic_features": {"concepts": spec.concepts},
                "search_text": " ".join([spec.text or "", *spec.concepts]),
                "text_vector": spec.text_vector,
            }
        )
        if spec.image is not None:
            vec_rows.append(
                {
                    "segment_id": sid,
                    "asset_id": asset_id,
                    "media_type": media_type,
                    "segment_type": kind,
                    "vector": describe_image(spec.image).tolist(),
                    "model": VISUAL_OFFLINE_SPACE,
                    "model_version": "test",
                    "created_at": now,
                }
            )
    catalog.upsert_assets(
        [
            {
                "id": asset_id,
                "filename": name,
                "file_hash": name,
                "file_size": file_size,
                "media_type": media_type,
                "mime_type": {"video": "video/mp4", "image": "image/png", "document": "application/pdf"}.get(
                    media_type, "audio/wav"
                ),
                "status": status,
                "reason_code": reason_code,
                "collection_id": collection_id,
                "duration": duration,
                "segment_count": len(segments),
                "metadata": json.dumps({}),
            }
        ]
    )
    if seg_rows:
        catalog.replace_segments(asset_id, seg_rows)
    if vec_rows:
        vision = catalog.table(VISION_TABLE, records.vector_table_schema(VISUAL_OFFLINE_DIM))
        table = pa.Table.from_pylist(vec_rows, schema=records.vector_table_schema(VISUAL_OFFLINE_DIM))
        (
            vision.merge_insert("segment_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(table)
        )
    return asset_id, seg_ids


def delete_vectors(catalog: Catalog, asset_id: str) -> None:
    catalog.table(VISION_TABLE, records.vector_table_schema(VISUAL_OFFLINE_DIM)).delete(
        f"asset_id = '{asset_id}'"
    )


def rows(reader: Any, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return reader.query(cypher, params or {})


def graph_tables(path: Any) -> dict[str, list[str]]:
    """Every row of every node and relation table of a Kuzu file (all properties, internal ids left
    out; a relation as its endpoints' labels and ids), each table's rows sorted: equal dumps are equal graphs."""
    import kuzu

    db = kuzu.Database(str(path), read_only=True)
    conn = kuzu.Connection(db)
    out: dict[str, list[str]] = {}
    try:
        for name, kind in conn.execute("CALL show_tables() RETURN name, type").get_all():
            if kind == "NODE":
                query = f"MATCH (n:{name}) RETURN n"
            else:
                query = f"MATCH (a)-[r:{name}]->(b) RETURN label(a), a.id, label(b), b.id, r"
            rows = []
            for row in conn.execute(query).get_all():
                *ends, value = row
                props = {k: v for k, v in value.items() if not k.startswith("_")}
                rows.append(repr((ends, sorted(props.items()))))
            out[name] = sorted(rows)
    finally:
        conn.close()
        db.close()
    return out
