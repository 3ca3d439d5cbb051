"""Audio analysis: decode to mono 16 kHz, split into speech-like, music-like and silent passages from
measured features, and describe each passage (loudness, peak, spectrum, zero crossings).

Files are analysed in two streaming decode passes, so memory does not grow with duration: the first
keeps only per-20 ms-frame RMS and ZCR (16 bytes a frame, under 6 MB for 2 hours) to segment from, the
second buffers one passage (at most `max_audio_segment_s`) at a time to describe and transcribe it.

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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.types import MediaAnalysis, Probe, SegmentDraft
from dataflux_pipelines.records import MediaType, SegmentType

if TYPE_CHECKING:
    from dataflux_pipelines.media.types import AnalysisOptions

ANALYSIS_RATE = 16000
FRAME_S = 0.02
WINDOW_S = 1.0
SILENCE_DBFS = -50.0
DB_FLOOR = -120.0  # dBFS reported for digital silence (JSON has no -inf)
SPEECH, MUSIC, SILENCE = "speech", "music", "silence"
Transcriber = Callable[[np.ndarray, int], str]


SCAN_BLOCK_FRAMES = 500  # frames measured per step of the first pass (10 s, 640 KB of samples)


def _open_audio(path: Path | str) -> tuple[Any, Any]:
    """(container, first audio stream or None); a container that cannot be opened is corrupt media."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except MemoryError:
        raise  # PyAV's ENOMEM is an FFmpegError too: leave it to the worker's memory-limit handling
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the audio container cannot be opened: {exc}") from exc
    return container, (container.streams.audio[0] if container.streams.audio else None)


def _decoded_chunks(
    container: Any, stream: Any, sample_rate: int
) -> Iterator[tuple[float | None, np.ndarray]]:
    """(time in s of the first sample, given with the first chunk only, then None; mono float32 samples)
    as the decoder yields them. Later chunks carry no time: the resampler may hold samples back."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    produced = False
    first: float | None = None
    try:
        for frame in container.decode(stream):
            if not produced and first is None and frame.time is not None:
                first = float(frame.time)  # a fresh resampler's first output sample is this frame's first
            for out in resampler.resample(frame):
                yield (
                    (None if produced else first),
                    out.to_ndarray().reshape(-1).astype(np.float32, copy=False),
                )
                produced = True
        for out in resampler.resample(None):
            yield (None if produced else first), out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            produced = True
    except MemoryError:
        raise
    except av.FFmpegError as exc:
        if not produced:
            raise MediaError(Reason.CORRUPT_MEDIA, f"the audio stream cannot be decoded: {exc}") from exc
        # Audio damaged after a valid start (a cut-off download) still yields what decoded.


def decode_audio(path: Path | str, sample_rate: int = ANALYSIS_RATE) -> np.ndarray | None:
    """The whole first audio stream as mono float32 at `sample_rate`; None when the file has no audio
    stream. Holds the whole track: for long files use `decode_audio_span` or `analyze_audio`."""
    container, stream = _open_audio(path)
    with container:
        if stream is None:
            return None
        chunks = [samples for _, samples in _decoded_chunks(container, stream, sample_rate)]
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


SEEK_PREROLL_S = 0.5  # decoded before a span and dropped: codecs with overlapping frames (AAC, MP3) need it


def decode_audio_span(
    path: Path | str, start_s: float, end_s: float, sample_rate: int = ANALYSIS_RATE
) -> np.ndarray | None:
    """Samples from `start_s` to `end_s` of the first audio stream, mono float32, found by seeking;
    None when the file has no audio stream. Memory is that of the span, whatever the file's length."""
    import av

    first, last = max(0, round(start_s * sample_rate)), max(0, round(end_s * sample_rate))
    target = max(0.0, start_s - SEEK_PREROLL_S)
    container, stream = _open_audio(path)
    with container:
        if stream is None:
            return None
        if target > 0 and stream.time_base:
            # Sample 0 is the stream's first sample, as in `decode_audio` (MP3 starts after its encoder delay).
            zero = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            try:
                container.seek(int((zero + target) / stream.time_base), stream=stream, backward=True)
            except (av.FFmpegError, OSError):
                pass  # a stream that cannot seek is read from the start below
            else:
                span = _collect_span(container, stream, first, last, sample_rate, zero)
                if span is not None:
                    return span
    # Unseekable, or no timestamp after the seek to place the samples: decode from the start.
    container, stream = _open_audio(path)
    with container:
        span = _collect_span(container, stream, first, last, sample_rate, None)
    assert span is not None
    return span


def _collect_span(
    container: Any, stream: Any, first: int, last: int, sample_rate: int, zero: float | None
) -> np.ndarray | None:
    """Samples [first, last) from the decoder's position: the start (`zero` None) or a seek point placed by
    the first frame's timestamp minus `zero`, the stream's start; None when that timestamp is missing."""
    chunks: list[np.ndarray] = []
    origin = 0 if zero is None else -1
    for when, samples in _decoded_chunks(container, stream, sample_rate):
        if zero is not None and origin < 0:
            if when is None:
                return None
            origin = max(0, round((when - zero) * sample_rate))
        a, b = max(first - origin, 0), min(last - origin, len(samples))
        if a < b:
            chunks.append(samples[a:b])
        origin += len(samples)
        if origin >= last:
            break
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


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


def _rms_zcr(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS and zero-crossing rate of each row of `frames`; per row, so any blocking gives the same values."""
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    signs = np.signbit(frames)
    return rms, (signs[:, 1:] != signs[:, :-1]).mean(axis=1)


def frame_features(
    samples: np.ndarray, sample_rate: int, chunk_frames: int = SCAN_BLOCK_FRAMES
) -> FrameFeatures:
    """RMS, zero-crossing rate, spectral centroid (Hz) and spectral flatness of every 20 ms frame."""
    frames = _frames(np.asarray(samples, np.float32), sample_rate)
    n = frames.shape[1] if frames.size else max(1, round(FRAME_S * sample_rate))
    window = np.hanning(n).astype(np.float32)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    parts: dict[str, list[np.ndarray]] = {"rms": [], "zcr": [], "centroid": [], "flatness": []}
    # Chunked so a passage never holds all its spectra at once; every value is per frame, so the
    # chunk size does not change the result.
    for start in range(0, len(frames), chunk_frames):
        block = frames[start : start + chunk_frames]
        rms, zcr = _rms_zcr(block)
        parts["rms"].append(rms)
        parts["zcr"].append(zcr)
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
    """Passages of one class each of an in-memory signal (see `segment_frames`)."""
    frames = _frames(np.asarray(samples, np.float32), sample_rate)
    # Measured in blocks: float64 copies of a whole long track would double or triple its memory.
    parts = [_rms_zcr(frames[i : i + SCAN_BLOCK_FRAMES]) for i in range(0, len(frames), SCAN_BLOCK_FRAMES)]
    rms = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0)
    zcr = np.concatenate([z for _, z in parts]) if parts else np.zeros(0)
    return segment_frames(rms, zcr, len(samples) / sample_rate, min_segment_s, max_segment_s)


def segment_frames(
    rms: np.ndarray, zcr: np.ndarray, duration: float, min_segment_s: float = 2.0, max_segment_s: float = 30.0
) -> list[Passage]:
    """Passages from per-20 ms-frame RMS and ZCR: 1 s windows classified, runs merged, runs shorter than
    `min_segment_s` absorbed by a neighbour, runs longer than `max_segment_s` split evenly."""
    per_window = max(1, round(WINDOW_S / FRAME_S))
    passages: list[Passage] = []
    for w, start in enumerate(range(0, max(1, len(rms)), per_window)):
        vote = classify_window(rms[start : start + per_window], zcr[start : start + per_window])
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
    """Audio features and confidence of one passage of an in-memory signal."""
    a, b = round(passage.start * sample_rate), round(passage.end * sample_rate)
    return _describe(samples[a:b], sample_rate, passage)


def _describe(part: np.ndarray, sample_rate: int, passage: Passage) -> tuple[dict[str, Any], float]:
    """Audio features and confidence of a passage from its own samples."""
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


@dataclass
class TrackScan:
    """What the first pass keeps of a whole track: per-frame RMS and ZCR, sample count, energy, peak."""

    rms: np.ndarray
    zcr: np.ndarray
    samples: int
    sum_squares: float
    peak: float

    @property
    def duration(self) -> float:
        return self.samples / ANALYSIS_RATE

    def loudness(self) -> dict[str, float]:
        """Loudness (RMS dBFS) and peak dBFS of the whole track, as `loudness_stats` gives them."""
        rms = float(np.sqrt(self.sum_squares / self.samples)) if self.samples else 0.0
        return {"loudness_dbfs": _db(rms), "peak_dbfs": _db(self.peak)}


def scan_audio(path: Path | str) -> TrackScan | None:
    """First pass: decode the track in chunks and keep only its per-frame RMS and ZCR at 16 kHz (and
    energy, peak and length); None when the file has no audio stream."""
    frame = round(FRAME_S * ANALYSIS_RATE)
    block = SCAN_BLOCK_FRAMES * frame
    rms_parts: list[np.ndarray] = []
    zcr_parts: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_len = total = 0
    sum_squares = peak = 0.0

    def measure(final: bool) -> None:
        nonlocal pending, pending_len
        joined = np.concatenate(pending)
        whole = len(joined) // frame * frame
        if whole:
            rms, zcr = _rms_zcr(joined[:whole].reshape(-1, frame))
            rms_parts.append(rms)
            zcr_parts.append(zcr)
        # The partial frame waits for the next chunk; at the end it is dropped, as `_frames` drops it.
        pending = [joined[whole:]] if not final and whole < len(joined) else []
        pending_len = len(joined) - whole if pending else 0

    container, stream = _open_audio(path)
    with container:
        if stream is None:
            return None
        for _, chunk in _decoded_chunks(container, stream, ANALYSIS_RATE):
            if not chunk.size:
                continue
            total += len(chunk)
            wide = chunk.astype(np.float64)
            sum_squares += float(np.dot(wide, wide))
            peak = max(peak, float(np.abs(chunk).max()))
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len >= block:
                measure(final=False)
    if pending:
        measure(final=True)
    empty = np.zeros(0)
    return TrackScan(
        np.concatenate(rms_parts) if rms_parts else empty,
        np.concatenate(zcr_parts) if zcr_parts else empty,
        total,
        sum_squares,
        peak,
    )


def passage_samples(path: Path | str, passages: list[Passage], expected: int) -> Iterator[np.ndarray]:
    """Second pass: the samples of each passage in order, decoding the track again and holding one
    passage (plus one decoder chunk) at a time. `expected` is the first pass's sample count."""
    spans = [(round(p.start * ANALYSIS_RATE), round(p.end * ANALYSIS_RATE)) for p in passages]
    held: list[np.ndarray] = []
    held_from = held_to = 0  # absolute sample range of `held`
    k = 0
    container, stream = _open_audio(path)
    with container:
        if stream is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "the audio stream vanished between decoding passes")
        for _, chunk in _decoded_chunks(container, stream, ANALYSIS_RATE):
            held.append(chunk)
            held_to += len(chunk)
            while k < len(spans) and held_to >= spans[k][1]:
                joined = np.concatenate(held)
                a, b = spans[k]
                part = joined[max(a - held_from, 0) : b - held_from]
                # Keep from the next passage's start (equal to this one's end but for rounding).
                keep_from = spans[k + 1][0] if k + 1 < len(spans) else held_to
                held = [joined[max(keep_from - held_from, 0) :].copy()]
                held_from = max(keep_from, held_from)
                k += 1
                yield part
            if k == len(spans):
                break
    if k < len(spans):  # the last passage ends at the first pass's last sample
        raise MediaError(
            Reason.CORRUPT_MEDIA,
            f"the audio stream decoded to {held_to} samples on a second pass, {expected} on the first",
        )


# --- windows to transcribe (media.transcripts decodes and transcribes them) -------------------
# Only true silence is skipped: Silero's VAD calls singing over music non-speech, so the energy of
# the scan decides. A window holds at most 30 s (Whisper's field of view).
MAX_WINDOW_S = 30.0
CUT_SEARCH_S = 10.0  # a long run is cut at its quietest frame within the window's last 10 s
MIN_GAP_S = 1.0  # silence at least this long separates windows
MIN_AUDIBLE_S = 0.3  # windows with less sound than this are not worth a decoder call
PAD_S = 0.2  # kept around the audible frames so word onsets and tails are not clipped


def audible_frames(rms: np.ndarray) -> np.ndarray:
    """True for each 20 ms frame above the silence floor (-50 dBFS)."""
    return np.asarray(rms, dtype=np.float64) >= 10 ** (SILENCE_DBFS / 20)


def plan_windows(rms: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the windows to transcribe, from per-frame RMS; silence skipped."""
    loud = audible_frames(rms)
    if not loud.any():
        return []
    gap = max(1, round(MIN_GAP_S / FRAME_S))
    idx = np.flatnonzero(loud)
    # Runs of audible frames, bridging silences shorter than MIN_GAP_S.
    breaks = np.flatnonzero(np.diff(idx) > gap)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    per_window = round(MAX_WINDOW_S / FRAME_S)
    search = round(CUT_SEARCH_S / FRAME_S)
    pad = round(PAD_S / FRAME_S)
    db = 20 * np.log10(np.asarray(rms, dtype=np.float64) + 1e-12)
    windows: list[tuple[int, int]] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        a, b = max(0, a - pad), min(len(rms), b + pad)
        while b - a > per_window:
            lo, hi = a + per_window - search, a + per_window
            cut = lo + int(np.argmin(db[lo:hi]))
            windows.append((a, cut))
            a = cut
        windows.append((a, b))
    min_loud = round(MIN_AUDIBLE_S / FRAME_S)
    kept = [(a, b) for a, b in windows if int(loud[a:b].sum()) >= min_loud]
    # Runs that fit in one window together share it: Whisper pads every window to 30 s anyway, so one
    # call per 30 s of timeline is cheaper than one per run, and the decoder keeps the context.
    packed: list[tuple[int, int]] = []
    for a, b in kept:
        if packed and b - packed[-1][0] <= per_window:
            packed[-1] = (packed[-1][0], b)
        else:
            packed.append((a, b))
    # A window that reaches the last whole frame runs to the exact end of the file: the scan's frames drop
    # the last partial 20 ms, and cutting those few samples changed Whisper's beam search on noisy clips
    # (bench/transcripts.py's tuning seed: 3 of 28 clips, one word each, either way).
    return [
        (round(a * FRAME_S, 3), float(duration) if b >= len(rms) else round(min(b * FRAME_S, duration), 3))
        for a, b in packed
    ]


def analyze_audio(
    path: Path | str, probe: Probe, options: AnalysisOptions, transcribe: Transcriber | None = None
) -> MediaAnalysis:
    """Passages with loudness and spectral features; speech-like passages transcribed when a
    `transcribe(samples, sample_rate)` callable is given (the model registry's Whisper profile).
    Two streaming decode passes: memory is bounded by one passage, not by the file's duration."""
    scan = scan_audio(path)
    if scan is None:
        raise MediaError(Reason.CORRUPT_MEDIA, "the file holds no audio stream")
    if scan.samples < ANALYSIS_RATE * FRAME_S:
        raise MediaError(Reason.CORRUPT_MEDIA, "the audio stream decodes to less than 20 ms of sound")
    duration = scan.duration
    passages = segment_frames(
        scan.rms, scan.zcr, duration, options.min_audio_segment_s, options.max_audio_segment_s
    )
    segments = []
    for i, (passage, part) in enumerate(
        zip(passages, passage_samples(path, passages, scan.samples), strict=True)
    ):
        features, confidence = _describe(part, ANALYSIS_RATE, passage)
        transcript = None
        if transcribe is not None and passage.label == SPEECH:
            transcript = transcribe(part, ANALYSIS_RATE).strip() or None
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
            **scan.loudness(),
        },
        # Everything but true silence is transcribed (speech and singing); see media.transcripts.
        transcript_windows=plan_windows(scan.rms, duration),
    )
