"""Peak RSS of detect_shots and of the full video analysis on a 2-minute and a 2-hour generated video.

Usage: .venv/bin/python bench/shots_memory.py [--hours 2] [--repeat 2] [--no-append]
The videos are 160x90 at 10 fps (a 2-hour one is 72,000 frames) with a mono AAC soundtrack, so that
generating them stays quick; each measurement runs in its own Python subprocess.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import append_section
from shots_corpus import make_texture

W, H, FPS = 160, 90, 10
AUDIO_RATE = 16000


def write_long_video(path: Path, seconds: int, seed: int = 3) -> None:
    """Panning textured scenes (the benchmark corpus's textures) with a cut every 4-12 s, as H.264, and
    a soundtrack (a tone per scene, quiet noise) as AAC, interleaved."""
    rng = np.random.default_rng(seed)
    scenes = [make_texture(rng, H * 2, W * 4) for _ in range(6)]
    total = seconds * FPS
    per_frame = AUDIO_RATE // FPS
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23", "g": "50"}
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "mono"
        t, scene, next_cut, x = 0, 0, int(rng.integers(40, 120)), 0
        pending = np.zeros(0, np.float32)
        sent = 0
        while t < total:
            if t == next_cut:
                scene = (scene + 1) % len(scenes)
                next_cut = t + int(rng.integers(40, 120))
                x = int(rng.integers(0, W * 3 - 250))  # a shot pans at most 240 px: no wrap inside it
            x = min(x + 2, W * 3)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(scenes[scene][40 : 40 + H, x : x + W]), format="rgb24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
            n0 = t * per_frame
            ts = np.arange(n0, n0 + per_frame) / AUDIO_RATE
            tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * scene) * ts) + 0.01 * rng.standard_normal(per_frame)
            pending = np.concatenate([pending, tone.astype(np.float32)])
            while len(pending) >= 1024:  # the AAC encoder takes 1024-sample frames
                chunk = av.AudioFrame.from_ndarray(pending[None, :1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = AUDIO_RATE, sent
                sent += 1024
                pending = pending[1024:]
                for packet in audio.encode(chunk):
                    out.mux(packet)
            t += 1
        for packet in stream.encode():
            out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


CHILD_DETECT = """
import sys, resource, time
from dataflux_pipelines.media.shots import detect_shots
t0 = time.perf_counter()
d = detect_shots(sys.argv[1])
print(d.frames, len(d.shots), round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# The full per-file analysis the `segments` asset runs: probe, shots, keyframes, features, audio.
CHILD_ANALYZE = """
import sys, resource, time
from pathlib import Path
from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file
from dataflux_pipelines.media.probe import probe_media
t0 = time.perf_counter()
a = analyze_file(sys.argv[1], probe_media(Path(sys.argv[1])), AnalysisOptions())
assert a.summary["has_audio"], "the generated soundtrack was not analysed"
print(a.summary["frames"], len(a.segments), round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(child: str, path: Path) -> tuple[int, int, float, int]:
    """Run one child script in a fresh interpreter; (frames, shots, seconds, peak RSS KiB of that child).

    The child reports its own ru_maxrss: RUSAGE_CHILDREN in this process is a maximum over all
    children so far, so it cannot show a second run using less than the first."""
    out = subprocess.run([sys.executable, "-c", child, str(path)], check=True, capture_output=True, text=True)
    frames, shots, seconds, own = out.stdout.split()
    return int(frames), int(shots), float(seconds), int(own)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs per measurement; the table shows the highest peak"
    )
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    env_path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    os.environ["PYTHONPATH"] = env_path
    children = {"detect_shots": CHILD_DETECT, "analyze_file": CHILD_ANALYZE}
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, seconds in (("2 minutes", 120), (f"{args.hours:g} hours", int(args.hours * 3600))):
            path = Path(tmp) / f"long_{seconds}.mp4"
            write_long_video(path, seconds)
            for name, child in children.items():
                runs = [measure(child, path) for _ in range(args.repeat)]
                frames, shots = runs[0][0], runs[0][1]
                secs = min(r[2] for r in runs)
                peaks = [r[3] for r in runs]
                rows.append((name, label, frames, shots, secs, max(peaks), min(peaks)))
                print(
                    f"{name} {label}: {frames} frames, {shots} shots, {secs:.1f} s, peak RSS "
                    + ", ".join(f"{p / 1024:.0f}" for p in peaks)
                    + " MiB",
                    file=sys.stderr,
                )
    base = {name: max(r[5] for r in rows if r[0] == name and r[1] == "2 minutes") for name in children}
    lines = [
        "| call | video | frames | shots found | time (s) | peak RSS (MiB), highest of runs | lowest | vs 2-minute video |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label, frames, shots, secs, hi, lo in rows:
        lines.append(
            f"| {name} | {label} | {frames} | {shots} | {secs:.1f} | {hi / 1024:.0f} | {lo / 1024:.0f} | {hi / base[name]:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        section = (
            f"\n## Video analysis peak memory ({dt.date.today().isoformat()}, bench/shots_memory.py)\n\n"
            f"Machine: {machine}. Generated H.264 videos, {W}x{H} at {FPS} fps (panning textures from bench/shots_corpus.py, a cut every "
            f"4-12 s) with a mono AAC soundtrack; every run in its own Python subprocess ({args.repeat} runs each), peak RSS "
            "from getrusage (ru_maxrss). `analyze_file` is the full per-shot analysis (probe, shots, keyframes, features, audio).\n\n"
            f"{table}\n"
        )
        append_section(section)


if __name__ == "__main__":
    main()
