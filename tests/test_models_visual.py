"""The visual-offline descriptor finds near-duplicates; concepts come from CLIP or measured features."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from tiny_models import build_tiny_clip, near_duplicate, textured_image

from dataflux_pipelines.models.concepts import VOCABULARY, feature_concepts, keywords, zero_shot_concepts
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.models.visual import (
    VISUAL_OFFLINE_DIM,
    describe_image,
    describe_images,
    measure_pixels,
)
from dataflux_pipelines.settings import Settings

SHOTS = 51  # one query shot and 50 distractors
FRAMES_PER_SHOT = 3


def encode_video(path: Path, frames: list[np.ndarray], fps: int = 12, bit_rate: int = 600_000) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    return path


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_a_resized_reencoded_cropped_copy_of_an_image_ranks_first_among_50_distractors() -> None:
    originals = [textured_image(seed) for seed in range(SHOTS)]
    index = describe_images(originals)
    for query in range(SHOTS):
        scores = index @ describe_image(near_duplicate(originals[query]))
        assert int(np.argmax(scores)) == query, f"image {query} was not its copy's nearest neighbour"


def test_a_reencoded_cropped_copy_of_a_video_shot_ranks_first_among_50_other_shots(tmp_path: Path) -> None:
    # One video of 51 shots; each shot pans slightly over its own picture.
    frames = []
    for shot in range(SHOTS):
        picture = np.asarray(textured_image(1000 + shot, size=(336, 240)))
        frames.extend(np.ascontiguousarray(picture[:, 4 * i : 4 * i + 320]) for i in range(FRAMES_PER_SHOT))
    original = encode_video(tmp_path / "original.mp4", frames)
    # The copy: 10 % cropped, scaled to 60 %, re-encoded at a lower bit rate.
    copy_frames = [
        np.asarray(near_duplicate(Image.fromarray(f), quality=90)) for f in decode_frames(original)
    ]
    # yuv420p needs even sides
    even = [np.ascontiguousarray(f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2]) for f in copy_frames]
    copy = encode_video(tmp_path / "copy.mp4", even, bit_rate=200_000)
    middle = FRAMES_PER_SHOT // 2
    keyframes = decode_frames(original)[middle::FRAMES_PER_SHOT]
    copied = decode_frames(copy)[middle::FRAMES_PER_SHOT]
    assert len(keyframes) == len(copied) == SHOTS
    index = describe_images(keyframes)
    for shot in range(SHOTS):
        scores = index @ describe_image(copied[shot])
        assert int(np.argmax(scores)) == shot, f"shot {shot} was not its copy's nearest neighbour"


def test_the_descriptor_is_deterministic_unit_length_and_of_fixed_dimension() -> None:
    image = textured_image(7, size=(123, 77))
    first, second = describe_image(image), describe_image(np.asarray(image))
    assert first.shape == (VISUAL_OFFLINE_DIM,)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert describe_images([]).shape == (0, VISUAL_OFFLINE_DIM)


def test_pictures_that_look_alike_score_higher_than_pictures_that_do_not() -> None:
    warm = Image.fromarray(np.clip(np.asarray(textured_image(5)) * [1.0, 0.4, 0.2], 0, 255).astype(np.uint8))
    warm_other = Image.fromarray(
        np.clip(np.asarray(textured_image(6)) * [1.0, 0.4, 0.2], 0, 255).astype(np.uint8)
    )
    cold = Image.fromarray(np.clip(np.asarray(textured_image(6)) * [0.2, 0.5, 1.0], 0, 255).astype(np.uint8))
    a, b, c = describe_images([warm, warm_other, cold])
    assert a @ b > a @ c


def test_measured_features_become_concepts_per_media_type() -> None:
    dark_grey = Image.fromarray(np.full((64, 64, 3), 20, np.uint8))
    measured = measure_pixels(dark_grey)
    assert measured["brightness"] < 0.1 and measured["colorfulness"] < 1.0
    labels = dict(feature_concepts({**measured, "shot_duration": 0.8}, "video"))
    assert {"dark", "monochrome", "fast-paced"} <= labels.keys()
    assert "bright" not in labels and "colorful" not in labels
    vivid = measure_pixels(textured_image(2))
    labels = dict(feature_concepts({**vivid, "shot_duration": 12.0}, "video"))
    assert "slow-paced" in labels and "dark" not in labels
    assert dict(feature_concepts({"audio_class": "Speech"}, "audio")) == {"speech": 1.0}
    doc = dict(
        feature_concepts(
            {"text": "Invoices: the invoice total and the invoice date. Invoices are due."}, "document"
        )
    )
    assert next(iter(doc)) == "invoice"
    assert "the" not in doc and "and" not in doc
    assert all(0.3 <= c <= 1.0 for c in doc.values())


def test_keywords_leave_out_stop_words_and_rank_by_frequency() -> None:
    ranked = keywords("The harbour at night. Ships leave the harbour; a ship arrives. The harbour sleeps.")
    assert ranked[0][0] == "harbour"
    assert all(word not in {"the", "at", "a"} for word, _ in ranked)
    assert keywords("") == [] and keywords("the and of") == []


def test_zero_shot_concepts_are_vocabulary_labels_with_softmax_confidences(tmp_path: Path) -> None:
    folder = build_tiny_clip(tmp_path / "tiny-clip")
    registry = ModelRegistry(
        Settings.from_env(
            {"DATAFLUX_HOME": str(tmp_path), "DATAFLUX_DEVICE": "cpu", "DATAFLUX_CLIP_MODEL": str(folder)}
        )
    )
    vectors = registry.embed_images([textured_image(1), textured_image(2)])
    every = zero_shot_concepts(registry, vectors, top_k=len(VOCABULARY), min_confidence=0.0)
    assert len(every) == 2
    for labels in every:
        assert [label for label, _ in labels] != [] and {label for label, _ in labels} <= set(VOCABULARY)
        assert sum(c for _, c in labels) == pytest.approx(1.0, abs=0.01)
        confidences = [c for _, c in labels]
        assert confidences == sorted(confidences, reverse=True)
    top3 = zero_shot_concepts(registry, vectors, top_k=3, min_confidence=0.0)
    assert [len(x) for x in top3] == [3, 3]
    assert zero_shot_concepts(registry, vectors, top_k=3, min_confidence=1.01) == [[], []]
