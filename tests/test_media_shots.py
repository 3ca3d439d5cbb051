"""Shot detection, video shot segments and `dataflux shots` on short clips generated here."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.shots import detect_shots, detect_shots_in_batches

W, H, FPS = 160, 90, 25


def texture(seed: int, w: int = W * 3, h: int = H * 2) -> np.ndarray:
    """Smooth colour noise with sharp rectangles: textured, not flat."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3), np.float32)
    for cells, weight in ((4, 1.0), (16, 0.5), (48, 0.3)):
        small = (rng.random((max(2, cells * h // w), cells, 3)) * 255).astype(np.uint8)
        acc += weight * (np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.float32) - 128)
    img = np.clip(rng.uniform(70, 180, 3) + acc, 0, 255).astype(np.uint8)
    for _ in range(30):
        x, y, s = rng.integers(0, w - 20), rng.integers(0, h - 20), rng.integers(4, 20)
        img[y : y + s, x : x + s] = rng.integers(0, 256, 3)
    return img


def view(tex: np.ndarray, x: float, y: int = 20) -> np.ndarray:
    x0 = round(x) % (tex.shape[1] - W)
    return tex[y : y + H, x0 : x0 + W].copy()


def write(path: Path, frames: list[np.ndarray], tone_hz: float | None = None) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        video.options = {"crf": "18", "g": "25"}
        audio = None
        if tone_hz is not None:
            audio = out.add_stream("aac", rate=16000)
            audio.layout = "mono"
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            n = int(len(frames) / FPS * 16000)
            t = np.arange(n) / 16000
            # Tone for the first half, silence for the second.
            wave = np.where(t < t[-1] / 2, 0.4 * np.sin(2 * np.pi * tone_hz * t), 0.0).astype(np.float32)
            for i in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, i : i + 1024], format="fltp", layout="mono")
                frame.sample_rate = 16000
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


# Truth of the main clip: cut to a new scene at 40, cut within the same scene at 80, dissolve over
# frames 120-135, fade out/in over 175-196, a 2-frame flash at 230-231; 270 frames in all.
CUTS = (40, 80)
DISSOLVE = (120, 135)
FADE = (175, 196)
FLASH = (230, 231)


def main_clip_frames() -> list[np.ndarray]:
    a, b, c, d = texture(1), texture(2), texture(3), texture(4)
    frames: list[np.ndarray] = []
    for t in range(0, 40):
        frames.append(view(a, 10 + 1.5 * t))
    for t in range(40, 80):
        frames.append(view(b, 30 + t))
    for t in range(80, 120):  # same scene, the camera jumped 120 px: similar palette, new view
        frames.append(view(b, 150 + t))
    for t in range(120, 136):
        alpha = (t - 119) / 17
        frames.append(((1 - alpha) * view(b, 150 + t) + alpha * view(c, 20 + t)).astype(np.uint8))
    for t in range(136, 175):
        frames.append(view(c, 20 + t))
    for t in range(175, 185):  # fade out
        frames.append((view(c, 20 + t) * (1 - (t - 174) / 11)).astype(np.uint8))
    frames.extend(np.zeros((H, W, 3), np.uint8) for _ in range(185, 187))
    for t in range(187, 197):  # fade in
        frames.append((view(d, t) * ((t - 186) / 11)).astype(np.uint8))
    for t in range(197, 270):
        img = view(d, t)
        if FLASH[0] <= t <= FLASH[1]:
            img = (img * 0.25 + 255 * 0.75).astype(np.uint8)
        frames.append(img)
    return frames


@pytest.fixture(scope="module")
def main_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("shots") / "main.mp4", main_clip_frames(), tone_hz=440.0)


@pytest.fixture(scope="module")
def main_detection(main_clip: Path):
    return detect_shots(main_clip)


def test_cuts_including_a_cut_within_the_same_scene_are_found_at_their_frame(main_detection) -> None:
    cuts = [t for t in main_detection.transitions if t.type == "cut"]
    assert len(cuts) == 2
    for cut, truth in zip(cuts, CUTS, strict=True):
        assert abs(cut.start_frame - truth) <= 1
        assert cut.start_frame == cut.end_frame
        assert 0.0 < cut.confidence <= 1.0


def test_dissolve_and_fade_are_reported_as_ranges_overlapping_the_truth(main_detection) -> None:
    kinds = {t.type: t for t in main_detection.transitions if t.type != "cut"}
    assert set(kinds) == {"dissolve", "fade"}
    for kind, (a, b) in (("dissolve", DISSOLVE), ("fade", FADE)):
        found = kinds[kind]
        assert found.start_frame < found.end_frame
        assert found.start_frame <= b and found.end_frame >= a, (kind, found)
        assert 0.0 < found.confidence <= 1.0


def test_flash_makes_no_boundary_and_shots_partition_the_video(main_detection) -> None:
    assert not [t for t in main_detection.transitions if t.start_frame >= 200]
    shots = main_detection.shots
    assert len(shots) == 5
    assert shots[0].start_frame == 0 and shots[-1].end_frame == 269 == main_detection.frames - 1
    for prev, nxt in itertools.pairwise(shots):
        assert nxt.start_frame == prev.end_frame + 1
        assert nxt.start == pytest.approx(prev.end)
    assert main_detection.fps == pytest.approx(FPS)


def test_camera_pans_whip_pans_and_flashes_in_one_shot_give_no_boundary(tmp_path: Path) -> None:
    tex = texture(7, w=W * 8)
    frames, x = [], 0.0
    for t in range(200):
        # Whip pan over frames 60-71: velocity ramps up to 30 px/frame and back (raised cosine).
        speed = 2.0 + (14.0 * (1 - np.cos(2 * np.pi * (t - 60) / 12)) if 60 <= t < 72 else 0.0)
        x += speed
        img = np.mean([view(tex, x - speed * k / 4) for k in range(4)], axis=0).astype(np.uint8)
        if t in (120, 150, 151, 152):
            img = (img * 0.3 + 255 * 0.7).astype(np.uint8)
        frames.append(img)
    detection = detect_shots(write(tmp_path / "pan.mp4", frames))
    assert detection.transitions == []
    assert len(detection.shots) == 1 and detection.shots[0].end_frame == 199


def test_batch_size_does_not_change_the_result(main_clip: Path, main_detection) -> None:
    import decord

    vr = decord.VideoReader(str(main_clip))
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    del vr
    small = detect_shots_in_batches((frames[i : i + 7] for i in range(0, len(frames), 7)), FPS)
    # Same boundaries; confidences may move a little because the adaptive threshold's window is
    # evaluated over differently cut stretches of the stream.
    got, want = small.to_json_dict(), main_detection.to_json_dict()
    assert got["shots"] == want["shots"]
    assert [(t["type"], t["start_frame"], t["end_frame"]) for t in got["transitions"]] == [
        (t["type"], t["start_frame"], t["end_frame"]) for t in want["transitions"]
    ]
    for a, b in zip(got["transitions"], want["transitions"], strict=True):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=0.05)


def test_missing_video_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        detect_shots(tmp_path / "nope.mp4")
    assert err.value.reason == Reason.MISSING_SOURCE


def test_cli_json_has_exactly_the_documented_shape(main_clip: Path) -> None:
    from dataflux_api.cli.media import shots

    result = CliRunner().invoke(shots, [str(main_clip), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"fps", "frames", "shots", "transitions"}
    assert isinstance(data["fps"], float) and data["frames"] == 270
    assert all(set(s) == {"start_frame", "end_frame", "start", "end"} for s in data["shots"])
    assert all(set(t) == {"type", "start_frame", "end_frame", "confidence"} for t in data["transitions"])
    assert [t["type"] for t in data["transitions"]] == ["cut", "cut", "dissolve", "fade"]


def test_cli_prints_a_table_of_shots_and_transitions(main_clip: Path) -> None:
    from dataflux_api.cli.media import shots

    result = CliRunner().invoke(shots, [str(main_clip)])
    assert result.exit_code == 0, result.output
    assert "5 shot(s)" in result.output and "dissolve" in result.output and "fade" in result.output


def test_analyze_video_yields_shot_segments_with_keyframes_and_features(main_clip: Path) -> None:
    pytest.importorskip("dataflux_pipelines.media.features")
    from dataflux_pipelines.media.probe import probe_media
    from dataflux_pipelines.media.video import analyze_video

    class Options:
        device = "cpu"

    analysis = analyze_video(str(main_clip), probe_media(main_clip), Options())
    assert analysis.media_type == "video"
    assert [s.segment_type for s in analysis.segments] == ["shot"] * 5
    assert [t["type"] for t in analysis.transitions] == ["cut", "cut", "dissolve", "fade"]
    first, last = analysis.segments[0], analysis.segments[-1]
    assert first.start_frame == 0 and last.end_frame == 269
    for seg in analysis.segments:
        key = Image.open(io.BytesIO(seg.keyframe_jpeg))
        thumb = Image.open(io.BytesIO(seg.thumbnail_jpeg))
        assert key.format == "JPEG" and max(key.size) <= 512 and max(thumb.size) <= 256
        assert seg.start_frame <= seg.technical_features["keyframe_frame"] <= seg.end_frame
        for name in (
            "brightness",
            "contrast",
            "saturation",
            "colourfulness",
            "sharpness",
            "palette",
            "motion_intensity",
        ):
            assert name in seg.visual_features
        assert seg.technical_features["codec"] == "h264"
        assert seg.technical_features["resolution"] == f"{W}x{H}"
        assert seg.technical_features["fps"] == pytest.approx(FPS)
        assert {"loudness_dbfs", "silence_ratio"} <= set(seg.audio_features)
    # The tone plays for the first half only: the first shot is loud, the last one silent.
    assert first.audio_features["silence_ratio"] < 0.1 < 0.9 < last.audio_features["silence_ratio"]
    assert first.visual_features["motion_intensity"] > 0
    summary = analysis.summary
    assert summary["shot_count"] == 5 and summary["frames"] == 270
    assert summary["mean_shot_length"] == pytest.approx(270 / FPS / 5, abs=1e-3)
    assert summary["median_shot_length"] > 0 and summary["palette"]
    assert analysis.thumbnail_jpeg is not None
