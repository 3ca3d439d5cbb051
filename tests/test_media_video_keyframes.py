"""Keyframe choice of video analysis: every shot gets a frame of its own, with bounded buffering."""

from __future__ import annotations

import numpy as np

from dataflux_pipelines.duplicates import SHOT_SAMPLES_MAX, sample_positions
from dataflux_pipelines.media.shots import Shot
from dataflux_pipelines.media.video import KEYFRAME_BUFFER, _KeyframePicker


def frame(index: int) -> np.ndarray:
    """A tiny RGB frame that carries its own index, so the picked frame can be checked."""
    return np.full((2, 2, 3), index % 256, np.uint8)


def shot(start: int, end: int) -> Shot:
    return Shot(start, end, start / 25, (end + 1) / 25)


def test_a_one_frame_shot_after_a_long_shot_still_gets_its_own_keyframe() -> None:
    # The long shot drives the sampling stride far above one frame; the short shot that follows
    # used to fall between two samples and fail the whole video.
    picker = _KeyframePicker()
    shots = [shot(0, 2999), shot(3000, 3000), shot(3001, 3099)]
    picked = []
    for i in range(3100):
        picker.offer(i, frame(i))
        if i % 64 == 63:  # the detector settles frames in batches, 128 frames behind the newest
            picked += picker.take([s for s in shots if s.end_frame < i - 128], max(0, i + 1 - 128))
    picked += picker.take(shots, 3100)
    assert [(s.start_frame, s.end_frame) for s, _, _, _ in picked] == [(0, 2999), (3000, 3000), (3001, 3099)]
    for s, index, rgb, samples in picked:
        assert s.start_frame <= index <= s.end_frame
        assert int(rgb[0, 0, 0]) == index % 256
        # The other frames compared for near-duplicates lie inside the shot, apart from the keyframe.
        assert all(s.start_frame <= i <= s.end_frame and i != index for i, _ in samples)
        assert all(int(f[0, 0, 0]) == i % 256 for i, f in samples)
    assert abs(picked[0][1] - 1500) <= 3000 // KEYFRAME_BUFFER  # near the middle of the long shot
    # The long shot's other samples sit near its time grid (`sample_positions`: a 120 s shot spreads the
    # most it keeps evenly); the one-frame shot has only its keyframe.
    grid = [
        p for p in sample_positions(0, 2999, picker.fps) if abs(p - picked[0][1]) > 3000 // KEYFRAME_BUFFER
    ]
    assert len(grid) == SHOT_SAMPLES_MAX
    assert all(min(abs(i - p) for i, _ in picked[0][3]) <= 3000 // KEYFRAME_BUFFER for p in grid)
    assert picked[1][3] == []


def test_buffered_frames_stay_bounded_while_a_long_shot_is_open() -> None:
    picker = _KeyframePicker()
    most = 0
    for i in range(20_000):
        picker.offer(i, frame(i))
        if i % 64 == 63:
            assert picker.take([], max(0, i + 1 - 128)) == []
            most = max(most, len(picker.pending) + len(picker.sampler.frames))
    assert most <= 128 + 64 + KEYFRAME_BUFFER + 1
