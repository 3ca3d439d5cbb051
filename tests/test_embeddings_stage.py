"""embed_segments over a real Lance `segments` table and a real local object store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest
from tiny_models import build_tiny_clip, jpeg_bytes, textured_image

from dataflux_pipelines import layout, records
from dataflux_pipelines.embeddings.stage import delete_asset_vectors, embed_segments, stale_assets
from dataflux_pipelines.identity import asset_id_for_hash, segment_id_for
from dataflux_pipelines.lance_sql import FilterError
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.objectstore import LocalObjectStore
from dataflux_pipelines.settings import Settings

OFFLINE_TABLE = layout.vector_table_name("vision", "visual-offline")


def asset(name: str) -> str:
    return asset_id_for_hash(name.encode().hex().ljust(64, "0")[:64])


class Library:
    """A Lance database and object store with segment rows as the `segments` stage writes them."""

    def __init__(self, root: Path) -> None:
        self.db = lancedb.connect(root / "lance", read_consistency_interval=dt.timedelta(0))
        self.store = LocalObjectStore(root / "store")
        self.segments = self.db.create_table(
            layout.SEGMENTS_TABLE, schema=records.SEGMENTS_SCHEMA, exist_ok=True
        )

    def add(self, asset_id: str, media_type: str, count: int, seed: int = 0, **extra: Any) -> list[str]:
        kind = {"video": "shot", "image": "image", "document": "chunk", "audio": "audio"}[media_type]
        rows = []
        for n in range(count):
            segment_id = segment_id_for(asset_id, kind, n)
            row: dict[str, Any] = {
                "id": segment_id,
                "asset_id": asset_id,
                "segment_type": kind,
                "sequence_number": n,
                "media_type": media_type,
                "filename": f"{media_type}-{seed}.bin",
                "context": "holiday footage" if media_type == "video" else None,
                "duration": 1.0 + n if media_type == "video" else None,
                "created_at": dt.datetime.now(dt.UTC),
            }
            if media_type in ("video", "image"):
                key = layout.derived_key(asset_id, f"keyframe_{n:04d}.jpg")
                self.store.put_bytes(key, jpeg_bytes(textured_image(seed * 100 + n)))
                row["keyframe_path"] = key
            if media_type == "document":
                row["text"] = f"Chapter {n}: the lighthouse keeper and the lighthouse at the harbour."
            if media_type == "audio":
                row["transcript"] = "welcome to the weekly podcast about sailing"
                row["audio_features"] = json.dumps({"class": "speech", "confidence": 0.9})
            row.update(extra)
            rows.append(row)
        # Like the `segments` stage: every column but the vector, which embedding fills in later.
        schema = pa.schema([f for f in records.SEGMENTS_SCHEMA if f.name != "text_vector"])
        data = pa.Table.from_pylist(rows, schema=schema)
        self.segments.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        return [r["id"] for r in rows]

    def remove_segments(self, segment_ids: list[str]) -> None:
        self.segments.delete("id IN (" + ", ".join(f"'{s}'" for s in segment_ids) + ")")

    def segment_rows(self) -> list[dict[str, Any]]:
        return self.db.open_table(layout.SEGMENTS_TABLE).to_arrow().to_pylist()

    def vision_rows(self, table: str = OFFLINE_TABLE) -> list[dict[str, Any]]:
        return self.db.open_table(table).to_arrow().to_pylist()


def registry_for(home: Path, clip: str | None = None) -> ModelRegistry:
    return ModelRegistry(
        Settings.from_env(
            {
                "DATAFLUX_HOME": str(home),
                "DATAFLUX_DEVICE": "cpu",
                "DATAFLUX_CLIP_MODEL": clip or str(home / "absent-clip"),
            }
        )
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    registry = registry_for(tmp_path_factory.mktemp("offline"))
    assert registry.vision.space == "visual-offline"
    return registry


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("clip")
    return registry_for(root, str(build_tiny_clip(root / "tiny-clip")))


def test_embedding_twice_leaves_exactly_one_vector_row_per_segment(
    tmp_path: Path, offline: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    video, image, doc = asset("video"), asset("image"), asset("doc")
    lib.add(video, "video", 3, seed=1)
    lib.add(image, "image", 1, seed=2)
    lib.add(doc, "document", 2)
    ids = [video, image, doc]
    for _ in range(2):
        outcomes = embed_segments(lib.db, offline, ids, lib.store.get_bytes)
    rows = lib.vision_rows()
    expected = {segment_id_for(video, "shot", n) for n in range(3)} | {segment_id_for(image, "image", 0)}
    assert len(rows) == 4
    assert {r["segment_id"] for r in rows} == expected
    assert {r["model_version"] for r in rows} == {offline.vision.version}
    assert outcomes[video].vision_vectors == 3 and outcomes[image].vision_vectors == 1
    assert outcomes[doc].vision_vectors == 0 and outcomes[doc].text_vectors == 2
    assert outcomes[video].text_model == offline.text.version
    assert outcomes[video].models == {
        "text": offline.text.version,
        "vision": offline.vision.version,
        "image-labels": offline.image_model.version,  # EfficientNet-Lite0: labels and the learned embedding
    }
    assert outcomes[doc].models == {"text": offline.text.version}
    segments = lib.segment_rows()
    assert len(segments) == 6
    assert all(s["text_vector"] is not None and len(s["text_vector"]) == 384 for s in segments)
    assert {s["text_model"] for s in segments} == {offline.text.version}
    chunk = next(s for s in segments if s["asset_id"] == doc)
    assert "lighthouse" in chunk["concepts"]
    assert "lighthouse" in chunk["search_text"] and "document-0.bin" in chunk["search_text"]
    shot = next(s for s in segments if s["asset_id"] == video)
    assert "holiday footage" in shot["search_text"]
    assert shot["filename"] == "video-1.bin"  # columns other than the embedding columns are untouched
    meta = outcomes[video].metadata()
    assert meta["segments"] == 3 and meta["model_seconds"] > 0 and json.dumps(meta)


def test_reprocessing_after_a_segment_disappears_removes_its_vector(
    tmp_path: Path, offline: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    video, other = asset("video-a"), asset("video-b")
    ids = lib.add(video, "video", 3, seed=3)
    lib.add(other, "video", 2, seed=4)
    embed_segments(lib.db, offline, [video, other], lib.store.get_bytes)
    lib.remove_segments(ids[1:])
    outcomes = embed_segments(lib.db, offline, [video], lib.store.get_bytes)
    assert outcomes[video].vision_vectors == 1
    remaining = {r["segment_id"] for r in lib.vision_rows()}
    assert remaining == {ids[0], segment_id_for(other, "shot", 0), segment_id_for(other, "shot", 1)}


def test_a_vision_model_change_moves_an_asset_to_the_new_space_and_out_of_the_old(
    tmp_path: Path, offline: ModelRegistry, tiny_clip: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    image = asset("image-space")
    lib.add(image, "image", 1, seed=5)
    embed_segments(lib.db, offline, [image], lib.store.get_bytes)
    outcomes = embed_segments(lib.db, tiny_clip, [image], lib.store.get_bytes)
    assert outcomes[image].vision_table == "vision__tiny_clip"
    assert len(lib.vision_rows("vision__tiny_clip")) == 1
    assert lib.vision_rows(OFFLINE_TABLE) == []
    # The learned embedding keeps its own table beside whichever vision space is current.
    assert delete_asset_vectors(lib.db, image) == {"vision__tiny_clip": 1, "vision__efficientnet_lite0": 1}
    assert lib.vision_rows("vision__tiny_clip") == []


def test_stale_assets_flags_exactly_the_partitions_whose_models_changed(
    tmp_path: Path, offline: ModelRegistry, tiny_clip: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    video, image, doc, sound, fresh = asset("v"), asset("i"), asset("d"), asset("a"), asset("new")
    lib.add(video, "video", 2, seed=6)
    lib.add(image, "image", 1, seed=7)
    lib.add(doc, "document", 1)
    lib.add(sound, "audio", 1)
    embed_segments(lib.db, offline, [video, image, doc, sound], lib.store.get_bytes)
    assert stale_assets(lib.db, offline) == []
    lib.add(fresh, "document", 1)  # segmented but never embedded
    assert stale_assets(lib.db, offline) == [fresh]
    # Switching the vision model affects only the visual partitions (and the never-embedded one).
    assert set(stale_assets(lib.db, tiny_clip)) == {video, image, fresh}
    embed_segments(lib.db, tiny_clip, [video, image, fresh], lib.store.get_bytes)
    assert stale_assets(lib.db, tiny_clip) == []
    assert set(stale_assets(lib.db, offline)) == {video, image}


def test_clip_concepts_and_feature_concepts_both_reach_the_segment(
    tmp_path: Path, tiny_clip: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    video, sound = asset("clip-video"), asset("clip-audio")
    lib.add(video, "video", 1, seed=8, duration=0.5)
    lib.add(sound, "audio", 1)
    outcomes = embed_segments(lib.db, tiny_clip, [video, sound], lib.store.get_bytes)
    (shot_concepts,) = outcomes[video].concepts.values()
    assert ("fast-paced", pytest.approx(0.3 + 0.7 * 1.0, abs=0.01)) in shot_concepts
    (audio_concepts,) = outcomes[sound].concepts.values()
    labels = dict(audio_concepts)
    assert labels["speech"] == pytest.approx(0.9) and "podcast" in labels
    row = next(r for r in lib.segment_rows() if r["asset_id"] == sound)
    assert "speech" in row["concepts"] and "speech" in row["search_text"]


def test_an_asset_with_a_missing_keyframe_fails_alone(tmp_path: Path, offline: ModelRegistry) -> None:
    lib = Library(tmp_path)
    good, bad = asset("good"), asset("bad")
    lib.add(good, "image", 1, seed=9)
    (bad_segment,) = lib.add(bad, "image", 1, seed=10)
    lib.store.delete(layout.derived_key(bad, "keyframe_0000.jpg"))
    outcomes = embed_segments(lib.db, offline, [good, bad], lib.store.get_bytes)
    assert outcomes[bad].error["reason_code"] == "missing_source"
    assert outcomes[good].error is None and outcomes[good].vision_vectors == 1
    assert {r["asset_id"] for r in lib.vision_rows()} == {good}
    bad_row = next(r for r in lib.segment_rows() if r["id"] == bad_segment)
    assert bad_row["text_vector"] is None and bad_row["text_model"] is None


def test_asset_ids_that_are_not_uuids_never_reach_a_where_string(
    tmp_path: Path, offline: ModelRegistry
) -> None:
    lib = Library(tmp_path)
    with pytest.raises(FilterError, match="not a UUID"):
        embed_segments(lib.db, offline, ["x' OR '1'='1"], lib.store.get_bytes)
    with pytest.raises(FilterError):
        delete_asset_vectors(lib.db, "1 = 1")
