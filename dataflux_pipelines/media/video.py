"""Video analysis: one decode pass feeds shot detection and keyframes; per-shot visual, style and audio features."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dataflux_pipelines.duplicates import sample_positions
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.features import dominant_palette, encode_jpeg, style_labels, visual_features
from dataflux_pipelines.media.screen_text import ChangeSampler, shot_text_frames
from dataflux_pipelines.media.shot_detector import LEARNED_SIZE, STREAM_WINDOW, FusedShotDetector
from dataflux_pipelines.media.shots import ANALYSIS_SIZE, Shot, decode_batches, torch_threads
from dataflux_pipelines.media.types import MediaAnalysis, Probe, SegmentDraft
from dataflux_pipelines.records import MediaType, SegmentType

AUDIO_RATE = 16000
KEYFRAME_BUFFER = 48  # frames kept per open shot to pick its middle frame from (bounded memory)
TILE = 16  # side of the per-shot colour tile the asset's colour summary is computed from


class _MiddleFrames:
    """Frames of one shot sampled at a doubling stride from its first frame, so memory stays bounded."""

    def __init__(self, capacity: int = KEYFRAME_BUFFER) -> None:
        self.capacity = capacity
        self.stride = 1
        self.frames: list[tuple[int, np.ndarray]] = []

    def offer(self, index: int, rgb: np.ndarray) -> None:
        if self.frames and index - self.frames[-1][0] < self.stride:
            return
        self.frames.append((index, rgb))
        if len(self.frames) > self.capacity:
            self.frames = self.frames[::2]
            self.stride *= 2

    def middle(self, shot: Shot) -> tuple[int, np.ndarray]:
        mid = (shot.start_frame + shot.end_frame) // 2
        return self.nearest(mid)

    def nearest(self, index: int) -> tuple[int, np.ndarray]:
        return min(self.frames, key=lambda item: abs(item[0] - index))

    def samples(self, shot: Shot, key_index: int, fps: float) -> list[tuple[int, np.ndarray]]:
        """The frames nearest to the shot's sample positions (`duplicates.sample_positions`, a time grid),
        the keyframe left out (it is compared as well)."""
        picked = {}
        for position in sample_positions(shot.start_frame, shot.end_frame, fps):
            index, rgb = self.nearest(position)
            if index != key_index:
                picked[index] = rgb
        return sorted(picked.items(), key=lambda item: item[0])


class _KeyframePicker:
    """The middle frame of each shot, from frames offered in order while the detector runs.

    Frames the detector may still split off into a new shot wait at full rate (at most its look-ahead
    plus one batch); settled frames are sampled per shot, so even a one-frame shot has its frame."""

    def __init__(self) -> None:
        self.fps = 25.0  # the stream's, set once the first batch is decoded
        self.pending: deque[tuple[int, np.ndarray]] = deque()
        self.sampler = _MiddleFrames()
        self.done = 0  # shots whose keyframe was taken

    def offer(self, index: int, rgb: np.ndarray) -> None:
        self.pending.append((index, rgb.copy()))  # a copy: a view would keep the whole batch alive

    def take(self, closed: list[Shot], settled: int) -> list[_Picked]:
        """Keyframes (shot, index, RGB, other sampled frames) of the shots closed and settled since the last call."""
        out: list[_Picked] = []
        while self.pending and self.pending[0][0] < settled:
            index, rgb = self.pending.popleft()
            while self.done < len(closed) and index > closed[self.done].end_frame:
                out.append(self._close(closed[self.done]))
            self.sampler.offer(index, rgb)
        while self.done < len(closed) and closed[self.done].end_frame < settled:
            out.append(self._close(closed[self.done]))
        return out

    def _close(self, shot: Shot) -> _Picked:
        if not self.sampler.frames:
            raise MediaError(
                Reason.INTERNAL_ERROR, f"no decoded frame for shot {shot.start_frame}-{shot.end_frame}"
            )
        index, rgb = self.sampler.middle(shot)
        samples = self.sampler.samples(shot, index, self.fps)
        self.sampler = _MiddleFrames()
        self.done += 1
        return shot, index, rgb, samples


# What the picker hands over per shot: the shot, its keyframe (index, RGB), its other sampled frames.
_Picked = tuple[Shot, int, np.ndarray, list[tuple[int, np.ndarray]]]


def _decode_size(probe: Probe, max_side: int) -> tuple[int, int]:
    """Decoder output size: the source scaled so its long side is at most `max_side` (-1 keeps the source)."""
    w, h = probe.width or 0, probe.height or 0
    if w <= 0 or h <= 0 or max(w, h) <= max_side:
        return -1, -1
    scale = max_side / max(w, h)
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _shot_audio(path: str, shots: list[Shot]) -> list[dict[str, Any] | None]:
    """Loudness of each shot's span, decoding the soundtrack once and holding one shot of samples at a time."""
    import av

    from dataflux_pipelines.media.audio import loudness_stats

    out: list[dict[str, Any] | None] = [None] * len(shots)
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the soundtrack cannot be opened: {exc}") from exc
    with container:
        if not container.streams.audio:
            return out
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        bounds = [round(s.end * AUDIO_RATE) for s in shots]
        # Shot index being filled, its samples, samples consumed before `pending`, samples seen.
        current, done, have = 0, 0, 0
        pending: list[np.ndarray] = []

        def emit(upto_shot: int) -> None:
            nonlocal current, pending, done
            samples = np.concatenate(pending) if pending else np.zeros(0, np.float32)
            while current < upto_shot:
                end = bounds[current] - done
                part, samples = samples[: max(end, 0)], samples[max(end, 0) :]
                done += len(part)
                out[current] = loudness_stats(part, AUDIO_RATE)
                current += 1
            pending = [samples] if len(samples) else []

        def feed(chunk: np.ndarray) -> None:
            nonlocal have
            pending.append(chunk)
            have += len(chunk)
            upto = current
            while upto < len(shots) and bounds[upto] <= have:
                upto += 1
            if upto > current:
                emit(upto)

        try:
            for frame in container.decode(container.streams.audio[0]):
                for res in resampler.resample(frame):
                    feed(res.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for res in resampler.resample(None):
                feed(res.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        except av.FFmpegError as exc:
            if current == 0 and not pending:
                raise MediaError(Reason.CORRUPT_MEDIA, f"the soundtrack cannot be decoded: {exc}") from exc
            # A soundtrack damaged part-way still describes the shots it covered.
        if current < len(shots) and pending:
            emit(current + 1)  # the soundtrack can end a little before the last frame
    return out


@dataclass
class _ShotPicture:
    """What a closed shot keeps of its keyframe: encoded pictures and features, not the pixels."""

    key_index: int
    keyframe_jpeg: bytes
    thumbnail_jpeg: bytes
    visual: dict[str, Any]
    tile: np.ndarray
    samples: list[tuple[int, bytes]]  # the other frames compared for near-duplicates (index, JPEG)


def analyze_video(path: str, probe: Probe, options: Any) -> MediaAnalysis:
    """Shot segments with keyframes, thumbnails and features, the transitions, and a per-asset summary."""
    device = getattr(options, "device", "cpu") or "cpu"
    keyframe_side = int(getattr(options, "keyframe_side", 512))
    thumbnail_side = int(getattr(options, "thumbnail_side", 256))
    window = int(getattr(options, "video_window", 64))
    width, height = _decode_size(probe, keyframe_side)
    size = (width, height) if width > 0 and height > 0 else None
    shot_detector = str(getattr(options, "shot_detector", "fused") or "fused")
    detector: FusedShotDetector | None = None
    picker = _KeyframePicker()
    sampler: ChangeSampler | None = None  # pictures to read for on-screen text (media.screen_text)
    pictures: list[_ShotPicture] = []
    fps = 0.0

    def collect(closed: list[Shot], settled: int) -> None:
        # Encode each keyframe as soon as its shot settles: holding the pixels of every shot's keyframe
        # until the end would grow with the number of shots.
        for shot, key_index, rgb, samples in picker.take(closed, settled):
            visual = visual_features(rgb)
            visual["motion_intensity"] = round(float(shot.motion), 4)
            pictures.append(
                _ShotPicture(
                    key_index,
                    encode_jpeg(rgb, keyframe_side),
                    encode_jpeg(rgb, thumbnail_side),
                    visual,
                    _tile(rgb),
                    # The keyframe's size: the duplicate check compares these with other videos' keyframes.
                    [(index, encode_jpeg(frame, keyframe_side)) for index, frame in samples],
                )
            )

    # One sequential decode pass in windows: only a couple of batches, the detector's look-ahead and
    # the open shot's sampled frames are held, whatever the video's length. The decoder scales each
    # frame three times: to the keyframe size, to TransNetV2's 48x27 and to the classical detector's 64x36
    # (no full-size RGB for either detector).
    also = None if shot_detector == "classical" else LEARNED_SIZE
    # The classical detector's small per-batch tensors run fastest on one torch thread; TransNetV2's
    # convolutions use the process's threads.
    threads = 1 if shot_detector == "classical" else None
    with torch_threads(torch.device(device), threads):
        for item in decode_batches(path, size, window, also=also, analysis=ANALYSIS_SIZE):
            batch_fps, batch = item[0], item[1]
            if detector is None:
                fps = batch_fps or float(probe.fps or 25.0)
                picker.fps = fps
                detector = FusedShotDetector(fps, device=device, detector=shot_detector, window=STREAM_WINDOW)
                sampler = ChangeSampler(fps)
            start = detector.frames
            assert sampler is not None
            for k, frame in enumerate(batch):
                picker.offer(start + k, frame)
                sampler.offer(start + k, frame)
            detector.push(batch, item[2], item[3])
            collect(detector.closed_shots, detector.settled_frames)
        if detector is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "the video has no frames")
        detection = detector.finish()
    collect(detection.shots, detection.frames)

    audio = _shot_audio(str(path), detection.shots)
    technical = {
        "width": probe.width,
        "height": probe.height,
        "resolution": f"{probe.width}x{probe.height}" if probe.width and probe.height else None,
        "fps": round(fps, 3),
        "codec": probe.video_codec,
    }
    # Confidence of a shot: how sure we are of the boundary that opened it (1.0 for the first shot).
    conf_by_start: dict[int, float] = {}
    for t in detection.transitions:
        b = t.start_frame if t.type == "cut" else (t.start_frame + t.end_frame + 1) // 2
        conf_by_start[b] = t.confidence
    segments: list[SegmentDraft] = []
    for i, (shot, pic) in enumerate(zip(detection.shots, pictures, strict=True)):
        segments.append(
            SegmentDraft(
                segment_type=SegmentType.SHOT,
                sequence_number=i,
                start_time=round(shot.start, 4),
                end_time=round(shot.end, 4),
                start_frame=shot.start_frame,
                end_frame=shot.end_frame,
                confidence=round(conf_by_start.get(shot.start_frame, 1.0), 4),
                keyframe_jpeg=pic.keyframe_jpeg,
                thumbnail_jpeg=pic.thumbnail_jpeg,
                visual_features=pic.visual,
                style_features=style_labels(pic.visual),
                technical_features={
                    **technical,
                    "keyframe_frame": pic.key_index,
                    "sample_frames": [index for index, _ in pic.samples],
                },
                audio_features=audio[i] or {},
                sample_frames_jpeg=[jpeg for _, jpeg in pic.samples],
            )
        )
    assert sampler is not None
    text_frames = shot_text_frames(
        [(s.start_frame, s.end_frame, round(s.start, 4), round(s.end, 4)) for s in detection.shots],
        sampler.captures,
        [(pic.key_index, pic.keyframe_jpeg) for pic in pictures],
        fps,
    )
    lengths = [s.end - s.start for s in detection.shots]
    mosaic = np.concatenate([pic.tile for pic in pictures], axis=1)
    longest = max(range(len(pictures)), key=lambda j: lengths[j])
    summary = {
        "fps": round(fps, 3),
        "frames": detection.frames,
        "duration": round(detection.frames / fps, 3),
        "shot_count": len(detection.shots),
        "mean_shot_length": round(statistics.fmean(lengths), 3),
        "median_shot_length": round(statistics.median(lengths), 3),
        "cuts_per_minute": round(60.0 * (len(detection.shots) - 1) / max(detection.frames / fps, 1e-9), 3),
        "transition_counts": {
            k: sum(1 for t in detection.transitions if t.type == k) for k in ("cut", "dissolve", "fade")
        },
        "palette": dominant_palette(mosaic, k=6),
        "shot_detector": detection.detector,
        "has_audio": any(a is not None for a in audio),
    }
    return MediaAnalysis(
        media_type=MediaType.VIDEO,
        segments=segments,
        summary=summary,
        transitions=[t.to_json_dict() for t in detection.transitions],
        thumbnail_jpeg=pictures[longest].thumbnail_jpeg,
        text_frames=text_frames,
    )


def _tile(rgb: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((TILE, TILE), Image.Resampling.BILINEAR))


def analyze_video_with_soundtrack(path: str, probe: Probe, options: Any) -> MediaAnalysis:
    """Shots, plus speech / music / silence passages of the soundtrack as `audio` segments beside them.

    The soundtrack is analysed in streaming passes (one passage held at a time), so any length is segmented.
    """
    from dataflux_pipelines.media.audio import analyze_audio

    analysis = analyze_video(path, probe, options)
    if not probe.audio_codec:
        return analysis
    try:
        audio = analyze_audio(path, probe, options)
    except MediaError as exc:
        # A video whose soundtrack cannot be decoded still has its shots; record why there are no passages.
        analysis.summary["soundtrack"] = {"passages": None, "skipped": str(exc)}
        return analysis
    analysis.segments.extend(audio.segments)
    analysis.summary["soundtrack"] = audio.summary
    analysis.transcript_windows = audio.transcript_windows
    return analysis
