"""Silero VAD (the ONNX model inside the `silero-vad` wheel): where in a window someone is speaking.

Silero treats singing over music as non-speech, so DataFlux never gates transcription on it: it is one
piece of evidence (with the passage classes and the energy) used to drop Whisper text that appears
where nobody speaks and the decoder itself was unsure (see `media.transcripts.keep_segment`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


def silero_model_path() -> Path:
    """The Silero ONNX model shipped in the installed `silero-vad` package."""
    try:
        import silero_vad
    except ImportError as exc:
        raise ImportError(
            "voice activity detection needs the `silero-vad` package; install the project's dependencies"
        ) from exc
    path = Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise OSError(f"the silero-vad package has no ONNX model at {path}")
    return path


class SileroVAD:
    """Speech spans (seconds) of 16 kHz mono windows; CPU ONNX (the model is tiny: a GPU does not help)."""

    def __init__(self, path: Path | str, device: str = "cpu", batch_size: int = 1) -> None:
        from silero_vad import load_silero_vad

        self.path = Path(path)
        self.device = "cpu"
        self.precision = "float32"
        self.batch_size = batch_size
        self.model = load_silero_vad(onnx=True)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.version = f"silero-vad@silero-vad=={importlib.metadata.version('silero-vad')}#{digest}"

    def speech_spans(self, windows: Sequence[np.ndarray]) -> list[list[tuple[float, float]]]:
        """(start, end) seconds of speech in each window, relative to the window."""
        import torch
        from silero_vad import get_speech_timestamps

        out: list[list[tuple[float, float]]] = []
        for window in windows:
            if window.size < 512:
                out.append([])
                continue
            spans = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)),
                self.model,
                sampling_rate=SAMPLE_RATE,
                return_seconds=True,
            )
            out.append([(float(s["start"]), float(s["end"])) for s in spans])
            self.model.reset_states()
        return out
