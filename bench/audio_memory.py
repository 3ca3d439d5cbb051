"""Peak RSS of the streaming audio analysis (`analyze_file`) on 2-minute and 2-hour generated audio files
and on a 2-hour video with soundtrack passages, against the whole-track in-memory path on the same files.

Usage: .venv/bin/python bench/audio_memory.py [--hours 2] [--repeat 2] [--no-append]
Audio is 16 kHz mono (WAV and AAC in .m4a), a 60 s cycle of speech-like syllables, chords, tones, noise,
tone bursts and silence from tests/media_factory.py; the video is bench/shots_memory.py's (160x90, 10 fps,
AAC soundtrack). Each measurement runs in its own Python subprocess and reports its own ru_maxrss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import media_factory as mf  # noqa: E402
from report import append_section  # noqa: E402
from shots_memory import write_long_video  # noqa: E402

RATE = 16000
CYCLE = [
    ("speech", 12.0),
    ("silence", 1.5),
    ("chord", 8.0),
    ("speech", 20.0),
    ("noise", 3.0),
    ("bursts", 4.0),
    ("tone", 11.5),
]  # 60 s


def audio_blocks(seconds: int) -> Iterator[np.ndarray]:
    """`seconds` of the 60 s cycle, one minute at a time (four seeds, so minutes differ)."""
    minutes = [mf.audio_samples(CYCLE, RATE, seed=s) for s in range(4)]
    for m in range(seconds // 60):
        yield minutes[m % 4]
    rest = seconds % 60
    if rest:
        yield minutes[0][: rest * RATE]


def write_wav(path: Path, seconds: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        for block in audio_blocks(seconds):
            w.writeframes((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())


def write_aac(path: Path, seconds: int) -> None:
    with av.open(str(path), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=RATE, layout="mono")
        sent = 0
        for block in audio_blocks(seconds):
            for i in range(0, len(block), 1024):  # the AAC encoder takes 1024-sample frames
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block[None, i : i + 1024]), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = RATE, sent
                sent += frame.samples
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# What the `segments` asset runs: probe, then analyze_file (for a video: shots plus soundtrack passages).
CHILD_STREAMING = """
import sys, resource, time
from pathlib import Path
from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file
from dataflux_pipelines.media.probe import probe_media
t0 = time.perf_counter()
a = analyze_file(sys.argv[1], probe_media(Path(sys.argv[1])), AnalysisOptions())
passages = sum(1 for s in a.segments if s.segment_type == "audio")
assert passages, "no audio passages"
print(passages, round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# The whole-track path analyze_audio took before streaming: decode everything, segment, describe slices.
CHILD_IN_MEMORY = """
import sys, resource, time
from dataflux_pipelines.media.audio import decode_audio, describe_passage, loudness_stats, segment_audio
t0 = time.perf_counter()
x = decode_audio(sys.argv[1])
passages = segment_audio(x, 16000)
features = [describe_passage(x, 16000, p) for p in passages]
loudness_stats(x, 16000)
print(len(passages), round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(child: str, path: Path) -> tuple[int, float, int]:
    """(passages, seconds, peak RSS KiB) of one child run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", child, str(path)], check=True, capture_output=True, text=True)
    passages, seconds, peak = out.stdout.split()
    return int(passages), float(seconds), int(peak)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs per measurement; the table shows the highest peak"
    )
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    long_s = int(args.hours * 3600)
    lengths = (("2 minutes", 120), (f"{args.hours:g} hours", long_s))
    kinds = {
        "WAV": (".wav", write_wav, ("streaming", "in-memory")),
        "AAC": (".m4a", write_aac, ("streaming", "in-memory")),
        "video": (".mp4", write_long_video, ("streaming",)),
    }
    children = {"streaming": CHILD_STREAMING, "in-memory": CHILD_IN_MEMORY}
    rows = []  # (kind, length label, path, passages, seconds, highest peak KiB, lowest peak KiB)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (ext, write, paths) in kinds.items():
            for label, seconds in lengths:
                path = Path(tmp) / f"{kind}_{seconds}{ext}"
                write(path, seconds)
                for name in paths:
                    runs = [measure(children[name], path) for _ in range(args.repeat)]
                    peak = max(r[2] for r in runs)
                    rows.append(
                        (
                            kind,
                            label,
                            name,
                            runs[0][0],
                            min(r[1] for r in runs),
                            peak,
                            min(r[2] for r in runs),
                        )
                    )
                    print(
                        f"{kind} {label} {name}: {runs[0][0]} passages, {rows[-1][4]:.1f} s, "
                        f"peak RSS {peak / 1024:.0f} MiB",
                        file=sys.stderr,
                    )
                path.unlink()
    peaks = {(k, lab, n): p for k, lab, n, _, _, p, _ in rows}
    lines = [
        "| file | length | path | audio passages | time (s) | peak RSS (MiB), highest of runs | lowest "
        "| vs 2-minute file | vs in-memory, same file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, label, name, passages, secs, peak, low in rows:
        short = peaks[(kind, "2 minutes", name)]
        ref = peaks.get((kind, label, "in-memory"))
        lines.append(
            f"| {kind} | {label} | {name} | {passages} | {secs:.1f} | {peak / 1024:.0f} | {low / 1024:.0f} | "
            f"{peak / short:.2f}x | {f'{peak / ref:.2f}x' if ref else 'n/a'} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        section = (
            f"\n## Audio analysis peak memory ({dt.date.today().isoformat()}, bench/audio_memory.py)\n\n"
            f"Machine: {machine}. Generated 16 kHz mono WAV and AAC (.m4a) files cycling speech-like syllables, "
            "chords, tones, noise, bursts and silence, and bench/shots_memory.py's 160x90 10 fps H.264 video with "
            f"an AAC soundtrack; each run in its own Python subprocess ({args.repeat} run(s) each), peak RSS from "
            "getrusage (ru_maxrss). `streaming` is `analyze_file` (two streaming decode passes; for the video, "
            "shots plus soundtrack passages); `in-memory` is the whole-track path it replaced (decode_audio, "
            "segment_audio, describe_passage on slices).\n\n"
            f"{table}\n"
        )
        append_section(section)


if __name__ == "__main__":
    main()
