"""A small, real DataFlux home for query tests: catalog and segment rows in Lance, MiniLM text vectors, indexes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import Catalog, connect, table_names
from dataflux_pipelines.embeddings.indexes import maintain_indexes
from dataflux_pipelines.identity import asset_id_for_hash, collection_id_for, segment_id_for, sha256_chunks
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.settings import Settings

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
VISION_SPACE = "test-space"
VISION_DIM = 8


def settings_for(home: Path, **overrides: Any) -> Settings:
    """Settings under `home` whose readers see every commit at once (no consistency lag in tests)."""
    base = Settings.from_env({"DATAFLUX_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    return dataclasses.replace(base, lance_read_consistency_s=0.0, **overrides)


def asset_id(name: str) -> str:
    return asset_id_for_hash(sha256_chunks([name.encode()]))


@dataclass
class Seg:
    text: str | None = None
    transcript: str | None = None
    start: float | None = None
    end: float | None = None
    page: int | None = None
    confidence: float = 0.9
    concepts: list[str] = field(default_factory=list)


@dataclass
class Doc:
    name: str
    media_type: str
    mime: str
    segments: list[Seg]
    duration: float | None = None
    status: str = "completed"
    context: str | None = None
    collection: str | None = None
    created_at: dt.datetime = NOW

    @property
    def id(self) -> str:
        return asset_id(self.name)

    def segment_id(self, n: int) -> str:
        return segment_id_for(self.id, _kind(self.media_type), n)


def _kind(media_type: str) -> str:
    return {"video": "shot", "audio": "audio", "image": "image", "document": "page"}[media_type]


TRAVEL = collection_id_for("travel", False)

CORPUS = [
    Doc(
        "report.pdf",
        "document",
        "application/pdf",
        [
            Seg(
                "Quarterly revenue grew strongly in the northern region. The board approved a new budget.",
                page=1,
            ),
            Seg("The warehouse inventory was counted in March. Two pallets were missing.", page=2),
        ],
        created_at=NOW - dt.timedelta(days=2),
    ),
    Doc(
        "recipes.md",
        "document",
        "text/markdown",
        [Seg("To bake sourdough bread, mix flour, water and salt. Let the dough rest overnight.", page=1)],
        created_at=NOW - dt.timedelta(days=40),
    ),
    Doc(
        "neighbour.txt",
        "document",
        "text/plain",
        [Seg("My neighbour bought a red car last week. It is parked outside.", page=1, confidence=0.4)],
    ),
    Doc(
        "paint.txt",
        "document",
        "text/plain",
        [Seg("The car that he painted was red and shiny.", page=1)],
    ),
    Doc(
        "beach.mp4",
        "video",
        "video/mp4",
        [
            Seg(transcript="Waves crash on a sandy beach at sunset.", start=0.0, end=5.0, concepts=["beach"]),
            Seg(transcript="Children build a sandcastle near the water.", start=5.0, end=12.0),
        ],
        duration=180.0,
        collection=TRAVEL,
    ),
    Doc(
        "city.mp4",
        "video",
        "video/mp4",
        [Seg(transcript="Cars drive through a busy city street at night.", start=0.0, end=20.0)],
        duration=20.0,
        collection=TRAVEL,
    ),
    Doc(
        "dog.jpg",
        "image",
        "image/jpeg",
        [Seg()],
        context="a golden retriever playing fetch in the park",
        status="processing",
    ),
    Doc(
        "podcast.mp3",
        "audio",
        "audio/mpeg",
        [Seg(transcript="Today we discuss machine learning and neural networks.", start=0.0, end=600.0)],
        duration=600.0,
    ),
    Doc("oreilly.txt", "document", "text/plain", [Seg("O'Reilly wrote about SQL OR 1=1 tricks.", page=1)]),
]


def write_docs(catalog: Catalog, registry: ModelRegistry, docs: list[Doc]) -> None:
    """Catalog rows and segment rows (with MiniLM vectors) the way the pipelines write them."""
    catalog.upsert_assets(
        [
            {
                "id": d.id,
                "filename": d.name,
                "mime_type": d.mime,
                "media_type": d.media_type,
                "status": d.status,
                "duration": d.duration,
                "context": d.context,
                "collection_id": d.collection,
                "segment_count": len(d.segments),
                "created_at": d.created_at,
                "thumbnail_path": layout.derived_key(d.id, "thumb.jpg"),
            }
            for d in docs
        ]
    )
    for d in docs:
        rows = []
        texts = []
        for n, s in enumerate(d.segments):
            search_text = " ".join(t for t in (s.text, s.transcript, d.context, d.name) if t)
            texts.append(search_text)
            rows.append(
                {
                    "id": d.segment_id(n),
                    "asset_id": d.id,
                    "segment_type": _kind(d.media_type),
                    "sequence_number": n,
                    "media_type": d.media_type,
                    "mime_type": d.mime,
                    "filename": d.name,
                    "collection_id": d.collection,
                    "start_time": s.start,
                    "end_time": s.end,
                    "page": s.page,
                    "confidence_score": s.confidence,
                    "text": s.text,
                    "transcript": s.transcript,
                    "context": d.context,
                    "concepts": s.concepts,
                    "search_text": search_text,
                    "thumbnail_path": layout.derived_key(d.id, f"seg{n}.jpg"),
                }
            )
        vectors = registry.embed_texts(texts)
        for row, vector in zip(rows, vectors, strict=True):
            row["text_vector"] = vector.tolist()
            row["text_model"] = "all-MiniLM-L6-v2"
        catalog.replace_segments(d.id, rows)


def write_vision(
    settings: Settings, rows: list[tuple[Doc, int, np.ndarray]], space: str = VISION_SPACE
) -> str:
    """Rows of a vision vector table (one per segment), as the embeddings stage writes them."""
    db = connect(settings)
    name = layout.vector_table_name("vision", space)
    dim = len(rows[0][2])
    table = pa.Table.from_pylist(
        [
            {
                "segment_id": d.segment_id(n),
                "asset_id": d.id,
                "media_type": d.media_type,
                "segment_type": _kind(d.media_type),
                "vector": np.asarray(v, dtype=np.float32).tolist(),
                "model": space,
                "model_version": "1",
                "created_at": NOW,
            }
            for d, n, v in rows
        ],
        schema=records.vector_table_schema(dim),
    )
    if name in table_names(db):
        db.open_table(name).add(table)
    else:
        db.create_table(name, data=table)
    return name


def build_home(home: Path, registry: ModelRegistry, docs: list[Doc] = CORPUS) -> Settings:
    settings = settings_for(home)
    catalog = Catalog(settings)
    write_docs(catalog, registry, docs)
    maintain_indexes(connect(settings))
    return settings
