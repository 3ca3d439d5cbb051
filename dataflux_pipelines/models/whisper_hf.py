"""Whisper through transformers, for users who point DATAFLUX_SPEECH_MODEL at a Hugging Face folder or id."""

from __future__ import annotations

import numpy as np

from dataflux_pipelines.models.loading import ModelProfile, batches, from_pretrained, model_version

WHISPER_SAMPLE_RATE = 16_000
WHISPER_WINDOW_S = 30.0


def resample(samples: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 at the target rate (polyphase filter, no aliasing)."""
    from math import gcd

    from scipy.signal import resample_poly

    mono = samples.astype(np.float32)
    if mono.ndim == 2:
        # (channels, n) or (n, channels): average the shorter axis away
        mono = mono.mean(axis=0 if mono.shape[0] < mono.shape[1] else 1)
    if sample_rate == target_rate:
        return mono
    g = gcd(int(sample_rate), int(target_rate))
    return resample_poly(mono, target_rate // g, int(sample_rate) // g).astype(np.float32)


class SpeechTranscriber:
    """Whisper speech-to-text: audio in 30-second windows, decoded in batches."""

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        ident, rev = profile.model_id_or_path, profile.revision
        self.model = (
            from_pretrained(WhisperForConditionalGeneration, ident, rev, dtype=self._dtype)
            .to(profile.device)
            .eval()
        )
        self.processor = from_pretrained(WhisperProcessor, ident, rev)
        self.version = model_version(ident, rev)

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        """The transcript of one recording (any rate, mono or multi-channel)."""
        audio = resample(np.asarray(samples), sample_rate, WHISPER_SAMPLE_RATE)
        if audio.size == 0:
            return ""
        window = int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE)
        pieces = [audio[i : i + window] for i in range(0, len(audio), window)]
        texts: list[str] = []
        torch = self._torch
        with torch.inference_mode():
            for batch in batches(pieces, self.profile.batch_size):
                features = self.processor(
                    list(batch), sampling_rate=WHISPER_SAMPLE_RATE, return_tensors="pt"
                ).input_features.to(self.profile.device, dtype=self._dtype)
                ids = self.model.generate(features)
                texts.extend(self.processor.batch_decode(ids, skip_special_tokens=True))
        return " ".join(t.strip() for t in texts if t.strip())
