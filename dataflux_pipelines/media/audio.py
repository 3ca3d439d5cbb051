"""Audio analysis: decode to mono 16 kHz, split into speech-like, music-like and silent passages from
measured features, and describe each passage (loudness, peak, spectrum, zero crossings).

Classification rule (documented in `classify_window`, measured on 1 s windows of 20 ms frames): a window
below -50 dBFS is silence. Otherwise three cues of speech, each scaled to 0..1, are averaged:
* syllabic modulation: share of the loudness envelope's modulation energy in 2–8 Hz (speech peaks near
  4 Hz; steady tones, chords and noise spread or lack it; a 1 Hz tone-burst pattern sits below it),
* low-energy ratio: share of frames quieter than half the window's mean (pauses between syllables;
  Scheirer & Slaney 1997),
* zero-crossing variation: coefficient of variation of the frame ZCR (voiced/unvoiced alternation).
A score of 0.5 or more is speech-like, below it music-like (any steady or tonal non-speech sound:
music, tones, noise). These are heuristics, hence the "-like" and the per-passage confidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflux_pipelines.contract import MediaType, SegmentType
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.types import MediaAnalysis, Probe, SegmentDraft

if TYPE_CHECKING:
    from dataflux_pipelines.media.analyze import AnalysisOptions

ANALYSIS_RATE = 16000
FRAME_S = 0.02
WINDOW_S = 1.0
SILENCE_DBFS = -50.0
DB_FLOOR = -120.0  # dBFS reported for digital silence (JSON has no -inf)
SPEECH, MUSIC, SILENCE = "speech", "music", "silence"
Transcriber = Callable[[np.ndarray, int], str]


def decode_audio(path: Path | str, sample_rate: int = ANALYSIS_RATE) -> np.ndarray | None:
    """The first audio stream as mono float32 at `sample_rate`; None when the file has no audio stream."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except MemoryError:
        raise  # PyAV's ENOMEM is an FFmpegError too: leave it to the worker's memory-limit handling
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the audio container cannot be opened: {exc}") from exc
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            if not chunks:
                raise MediaError(Reason.CORRUPT_MEDIA, f"the audio stream cannot be decoded: {exc}") from exc
            # Audio damaged after a valid start (a cut-off download) still yields what decoded.
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _db(value: float) -> float:
    return round(max(DB_FLOOR, 20.0 * float(np.log10(value))) if value > 0 else DB_FLOOR, 2)


def _frames(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    n = max(1, round(FRAME_S * sample_rate))
    count = len(samples) // n
    return samples[: count * n].reshape(count, n)


def loudness_stats(samples: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Loudness (RMS dBFS), peak dBFS and the share of 20 ms frames below -50 dBFS."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return {"loudness_dbfs": DB_FLOOR, "peak_dbfs": DB_FLOOR, "silence_ratio": 1.0}
    frames = _frames(x, sample_rate)
    if len(frames):
        frame_db = 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) + 1e-12)
        silence = float((frame_db < SILENCE_DBFS).mean())
    else:
        silence = 1.0 if np.sqrt((x.astype(np.float64) ** 2).mean()) < 10 ** (SILENCE_DBFS / 20) else 0.0
    return {
        "loudness_dbfs": _db(float(np.sqrt((x.astype(np.float64) ** 2).mean()))),
        "peak_dbfs": _db(float(np.abs(x).max())),
        "silence_ratio": round(silence, 4),
    }


@dataclass
class FrameFeatures:
    """Per-20 ms-frame measurements of a signal."""

    rms: np.ndarray
    zcr: np.ndarray
    centroid: np.ndarray
    flatness: np.ndarray


def frame_features(samples: np.ndarray, sample_rate: int, chunk_frames: int = 3000) -> FrameFeatures:
    """RMS, zero-crossing rate, spectral centroid (Hz) and spectral flatness of every 20 ms frame."""
    frames = _frames(np.asarray(samples, np.float32), sample_rate)
    n = frames.shape[1] if frames.size else max(1, round(FRAME_S * sample_rate))
    window = np.hanning(n).astype(np.float32)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    parts: dict[str, list[np.ndarray]] = {"rms": [], "zcr": [], "centroid": [], "flatness": []}
    # Chunked so an hour of audio never holds all spectra at once.
    for start in range(0, len(frames), chunk_frames):
        block = frames[start : start + chunk_frames]
        parts["rms"].append(np.sqrt((block.astype(np.float64) ** 2).mean(axis=1)))
        signs = np.signbit(block)
        parts["zcr"].append((signs[:, 1:] != signs[:, :-1]).mean(axis=1))
        power = np.abs(np.fft.rfft(block * window, axis=1)) ** 2 + 1e-12
        total = power.sum(axis=1)
        parts["centroid"].append((power * freqs).sum(axis=1) / total)
        parts["flatness"].append(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1))
    empty = np.zeros(0)
    return FrameFeatures(**{k: np.concatenate(v) if v else empty for k, v in parts.items()})


def classify_window(rms: np.ndarray, zcr: np.ndarray) -> tuple[str, float, float]:
    """(class, confidence, speech score) of one window from its frames' RMS and ZCR (see module doc)."""
    level = _db(float(np.sqrt((rms**2).mean()))) if rms.size else DB_FLOOR
    if level < SILENCE_DBFS:
        return SILENCE, min(1.0, 0.5 + (SILENCE_DBFS - level) / 20.0), 0.0
    mean = float(rms.mean())
    low_energy = float((rms < 0.5 * mean).mean())
    envelope = rms - mean
    spectrum = np.abs(np.fft.rfft(envelope)) ** 2
    freqs = np.fft.rfftfreq(rms.size, FRAME_S)
    band = spectrum[(freqs >= 2) & (freqs <= 8)].sum()
    total = spectrum[freqs >= 0.5].sum()
    # Relative modulation below 5 % of the mean is a steady sound whatever its spectrum shape.
    modulation = float(band / total) if total > 0 and envelope.std() > 0.05 * mean else 0.0
    voiced = zcr[rms >= 0.1 * mean] if mean > 0 else zcr
    zcr_variation = float(voiced.std() / voiced.mean()) if voiced.size and voiced.mean() > 0 else 0.0
    cues = [
        np.clip((modulation - 0.35) / 0.3, 0, 1),
        np.clip((low_energy - 0.1) / 0.3, 0, 1),
        np.clip((zcr_variation - 0.2) / 0.6, 0, 1),
    ]
    score = float(np.mean(cues))
    label = SPEECH if score >= 0.5 else MUSIC
    return label, max(score, 1 - score), score


@dataclass
class Passage:
    """A run of windows with one class, in seconds."""

    start: float
    end: float
    label: str
    votes: list[tuple[str, float, float]]  # per window: class, confidence, speech score

    @property
    def length(self) -> float:
        return self.end - self.start


def _majority(votes: list[tuple[str, float, float]]) -> str:
    counts: dict[str, int] = {}
    for label, _, _ in votes:
        counts[label] = counts.get(label, 0) + 1
    return max(counts, key=lambda k: (counts[k], k == SPEECH))


def segment_audio(
    samples: np.ndarray, sample_rate: int, min_segment_s: float = 2.0, max_segment_s: float = 30.0
) -> list[Passage]:
    """Passages of one class each: 1 s windows classified, runs merged, runs shorter than
    `min_segment_s` absorbed by a neighbour, runs longer than `max_segment_s` split evenly."""
    feats = frame_features(samples, sample_rate)
    duration = len(samples) / sample_rate
    per_window = max(1, round(WINDOW_S / FRAME_S))
    passages: list[Passage] = []
    for w, start in enumerate(range(0, max(1, len(feats.rms)), per_window)):
        rms, zcr = feats.rms[start : start + per_window], feats.zcr[start : start + per_window]
        vote = classify_window(rms, zcr)
        begin, end = w * WINDOW_S, min(duration, (w + 1) * WINDOW_S)
        if passages and passages[-1].label == vote[0]:
            passages[-1].end = end
            passages[-1].votes.append(vote)
        else:
            passages.append(Passage(begin, end, vote[0], [vote]))
    if passages:
        passages[-1].end = duration  # the last partial frame belongs to the last passage
    while len(passages) > 1:
        shortest = min(range(len(passages)), key=lambda i: passages[i].length)
        if passages[shortest].length >= min_segment_s:
            break
        left = passages[shortest - 1] if shortest > 0 else None
        right = passages[shortest + 1] if shortest + 1 < len(passages) else None
        if left is not None and right is not None and left.label == right.label:
            left.end = right.end
            left.votes += passages[shortest].votes + right.votes
            del passages[shortest : shortest + 2]
            continue
        target = left if right is None or (left is not None and left.length >= right.length) else right
        assert target is not None
        target.start, target.end = (
            min(target.start, passages[shortest].start),
            max(target.end, passages[shortest].end),
        )
        target.votes = (
            target.votes + passages[shortest].votes
            if target is left
            else passages[shortest].votes + target.votes
        )
        target.label = _majority(target.votes)
        del passages[shortest]
    out: list[Passage] = []
    for p in passages:
        pieces = max(1, int(np.ceil(p.length / max_segment_s)))
        step = p.length / pieces
        for k in range(pieces):
            a = k * len(p.votes) // pieces
            b = max(a + 1, (k + 1) * len(p.votes) // pieces)
            out.append(Passage(p.start + k * step, p.start + (k + 1) * step, p.label, p.votes[a:b]))
    return out


def describe_passage(samples: np.ndarray, sample_rate: int, passage: Passage) -> tuple[dict[str, Any], float]:
    """Audio features and confidence of one passage."""
    a, b = round(passage.start * sample_rate), round(passage.end * sample_rate)
    part = samples[a:b]
    feats = frame_features(part, sample_rate)
    stats = loudness_stats(part, sample_rate)
    audible = feats.rms >= 10 ** (SILENCE_DBFS / 20)
    weights = feats.rms[audible] ** 2
    if weights.size and weights.sum() > 0:
        centroid = float((feats.centroid[audible] * weights).sum() / weights.sum())
        flatness = float(feats.flatness[audible].mean())
    else:
        centroid, flatness = 0.0, 0.0
    agreement = [conf if label == passage.label else 1 - conf for label, conf, _ in passage.votes]
    confidence = round(float(np.mean(agreement)), 4) if agreement else 0.0
    features = {
        "class": passage.label,
        "confidence": confidence,
        **stats,
        "spectral_centroid_hz": round(centroid, 1),
        "spectral_flatness": round(flatness, 4),
        "zero_crossing_rate": round(float(feats.zcr.mean()) if feats.zcr.size else 0.0, 4),
        "speech_score": round(float(np.mean([s for _, _, s in passage.votes])), 4),
    }
    return features, confidence


def analyze_audio(
    path: Path | str, probe: Probe, options: AnalysisOptions, transcribe: Transcriber | None = None
) -> MediaAnalysis:
    """Passages with loudness and spectral features; speech-like passages transcribed when a
    `transcribe(samples, sample_rate)` callable is given (the model registry's Whisper profile)."""
    samples = decode_audio(path, ANALYSIS_RATE)
    if samples is None:
        raise MediaError(Reason.CORRUPT_MEDIA, "the file holds no audio stream")
    if samples.size < ANALYSIS_RATE * FRAME_S:
        raise MediaError(Reason.CORRUPT_MEDIA, "the audio stream decodes to less than 20 ms of sound")
    passages = segment_audio(samples, ANALYSIS_RATE, options.min_audio_segment_s, options.max_audio_segment_s)
    segments = []
    for i, passage in enumerate(passages):
        features, confidence = describe_passage(samples, ANALYSIS_RATE, passage)
        transcript = None
        if transcribe is not None and passage.label == SPEECH:
            a, b = round(passage.start * ANALYSIS_RATE), round(passage.end * ANALYSIS_RATE)
            transcript = transcribe(samples[a:b], ANALYSIS_RATE).strip() or None
        segments.append(
            SegmentDraft(
                segment_type=SegmentType.AUDIO,
                sequence_number=i,
                start_time=round(passage.start, 3),
                end_time=round(passage.end, 3),
                confidence=confidence,
                transcript=transcript,
                audio_features=features,
            )
        )
    duration = len(samples) / ANALYSIS_RATE
    shares = {label: 0.0 for label in (SPEECH, MUSIC, SILENCE)}
    for passage in passages:
        shares[passage.label] += passage.length / duration
    return MediaAnalysis(
        media_type=MediaType.AUDIO,
        segments=segments,
        summary={
            "duration": round(duration, 3),
            "passages": len(segments),
            **{f"{label}_ratio": round(share, 4) for label, share in shares.items()},
            **{k: v for k, v in loudness_stats(samples, ANALYSIS_RATE).items() if k != "silence_ratio"},
        },
    )
