"""What is said or sung: the windows of a track worth transcribing, and transcript segments from them.

Windows come from the per-20 ms-frame energy the audio scan already keeps: only true silence (below
-50 dBFS for a second or more) is skipped, so singing over music is transcribed although Silero's VAD
calls it non-speech. A window holds at most 30 s (Whisper's field of view): sounding runs that fit
together share one, a longer run is cut at the quietest frame of its last 10 s, so words are rarely
split. Files stream: windows are decoded one after the
other in a single pass, so memory is one batch of windows whatever the file's length.

Whisper text where the VAD hears no speech is kept only when the decoder was confident (singing);
music without voice makes Whisper invent low-confidence filler ("Thank you.", "♪"), which is dropped.
Such a window is decoded only when Whisper's own no-speech probability leaves a segment a chance of
being kept: the probability costs the encoder and one decoder step, while a full decode of a tone or
of a hum is the decoder's worst case (hundreds of repeated tokens at each fallback temperature).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataflux_pipelines.errors import MediaError
from dataflux_pipelines.media.audio import (
    ANALYSIS_RATE,
    MAX_WINDOW_S,
    Passage,
    audible_frames,
    passage_samples,
    plan_windows,
)

__all__ = ["MAX_WINDOW_S", "audible_frames", "plan_windows"]  # planned with the scan, in media.audio

# A segment where Silero hears no speech is kept only when Whisper's mean token probability
# (exp(avg_logprob)) reaches this and it does not think the span is silence. Set before measuring;
# on bench/transcripts.py's tuning seed it dropped no sung word and let no instrumental filler through.
UNVOICED_MIN_CONFIDENCE = 0.45
UNVOICED_MAX_NO_SPEECH = 0.5
VAD_SPEECH_SHARE = 0.3  # the share of a segment's span Silero must call speech to keep it outright
_FILLER = re.compile(r"^[\s\W♪]*$")


@dataclass
class TranscriptSegment:
    """One transcript segment: times in seconds from the start of the file."""

    text: str
    start: float
    end: float
    language: str
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)
    voiced: float = 0.0  # share of the span Silero calls speech (0 for singing over music)


def window_samples(path: Path | str, windows: Sequence[tuple[float, float]]) -> Iterator[np.ndarray]:
    """The 16 kHz mono samples of each window, in order, from one sequential decode of the file."""
    if not windows:
        return iter(())
    passages = [Passage(a, b, "window", []) for a, b in windows]
    expected = round(windows[-1][1] * ANALYSIS_RATE)
    return passage_samples(path, passages, expected)


def _overlap(a: float, b: float, spans: Sequence[tuple[float, float]]) -> float:
    if b <= a:
        return 0.0
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans) / (b - a)


def keep_segment(text: str, confidence: float, no_speech_prob: float, voiced: float) -> bool:
    """Whether a Whisper segment is real speech or singing (see module doc)."""
    if not text or _FILLER.match(text):
        return False
    if voiced >= VAD_SPEECH_SHARE:
        return True
    return confidence >= UNVOICED_MIN_CONFIDENCE and no_speech_prob <= UNVOICED_MAX_NO_SPEECH


def _kept(
    offset: float, segments: Sequence[Any], spans: Sequence[tuple[float, float]] | None
) -> list[TranscriptSegment]:
    """Whisper segments of one window that pass `keep_segment`, moved to file time."""
    out = []
    for seg in segments:
        voiced = _overlap(seg.start, seg.end, spans) if spans is not None else 1.0
        if not keep_segment(seg.text, seg.confidence, seg.no_speech_prob, voiced):
            continue
        words = [
            {**w.to_json(), "start": round(offset + w.start, 3), "end": round(offset + w.end, 3)}
            for w in seg.words
        ]
        out.append(
            TranscriptSegment(
                text=seg.text,
                start=round(offset + max(0.0, seg.start), 3),
                end=round(offset + max(seg.start, seg.end), 3),
                language=seg.language,
                confidence=round(seg.confidence, 4),
                words=words,
                voiced=round(voiced, 3),
            )
        )
    return out


def _decode(
    audio: Sequence[np.ndarray], whisper: Any, vad: Any | None
) -> list[tuple[list[Any], list[tuple[float, float]] | None]]:
    """Whisper's segments and Silero's speech spans of each window (spans None without a VAD).

    A window where Silero hears no speech keeps a segment only under `keep_segment`'s second rule,
    which needs `no_speech_prob <= UNVOICED_MAX_NO_SPEECH`; when the window's first 30-s step already
    fails that, it is not decoded. Windows hold at most 30 s, so that step is the whole window unless
    the decoder stops early and re-reads the tail, whose probability is not known before decoding.
    """
    speech = vad.speech_spans(audio) if vad is not None else None
    hopeless = [False] * len(audio)
    probe = getattr(whisper, "no_speech_probability", None)
    if speech is not None and probe is not None:
        hopeless = [
            not spans and probe(a) > UNVOICED_MAX_NO_SPEECH for a, spans in zip(audio, speech, strict=True)
        ]
    decoded = iter(
        whisper.transcribe_windows([a for a, skip in zip(audio, hopeless, strict=True) if not skip])
    )
    return [
        ([] if skip else next(decoded), None if speech is None else speech[j])
        for j, skip in enumerate(hopeless)
    ]


@dataclass
class FileWindows:
    """The windows of one file to transcribe; `key` is the caller's id for the file."""

    key: str
    path: Path | str
    windows: list[tuple[float, float]]


def transcribe_files(
    files: Iterable[FileWindows],
    whisper: Any,
    vad: Any | None,
    batch_size: int,
    on_error: Callable[[str, MediaError], None] | None = None,
) -> dict[str, list[TranscriptSegment]]:
    """Transcript segments of every file, windows batched across files (`batch_size` per model call).

    `whisper.transcribe_windows(list[np.ndarray])` and `vad.speech_spans(list[np.ndarray])` are the
    model modules' batched calls. A file whose audio fails to decode is reported to `on_error` and
    gets no transcript; the others go on.
    """
    out: dict[str, list[TranscriptSegment]] = {}
    pending: list[tuple[str, float, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        audio = [samples for _, _, samples in pending]
        for (key, offset, _), (segments, spans) in zip(pending, _decode(audio, whisper, vad), strict=True):
            out[key].extend(_kept(offset, segments, spans))
        pending.clear()

    for item in files:
        out[item.key] = []
        try:
            for (start, _), samples in zip(
                item.windows, window_samples(item.path, item.windows), strict=False
            ):
                pending.append((item.key, start, samples))
                if len(pending) >= batch_size:
                    flush()
        except MediaError as exc:  # one file's damaged audio must not cost the others their transcripts
            pending[:] = [p for p in pending if p[0] != item.key]
            out[item.key] = []
            if on_error is None:
                raise
            on_error(item.key, exc)
    flush()
    return out


def transcribe_array(
    samples: np.ndarray, whisper: Any, vad: Any | None, batch_size: int = 8
) -> list[TranscriptSegment]:
    """Transcript of an in-memory 16 kHz mono signal (benchmarks and tests): same planning and rules."""
    from dataflux_pipelines.media.audio import _frames, _rms_zcr

    frames = _frames(np.asarray(samples, np.float32), ANALYSIS_RATE)
    rms = _rms_zcr(frames)[0] if len(frames) else np.zeros(0)
    windows = plan_windows(rms, len(samples) / ANALYSIS_RATE)
    out: list[TranscriptSegment] = []
    for k in range(0, len(windows), batch_size):
        spans = windows[k : k + batch_size]
        pieces = [samples[round(a * ANALYSIS_RATE) : round(b * ANALYSIS_RATE)] for a, b in spans]
        for (start, _), (segments, speech) in zip(spans, _decode(pieces, whisper, vad), strict=True):
            out.extend(_kept(start, segments, speech))
    return out
