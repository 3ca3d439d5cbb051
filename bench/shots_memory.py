"""Peak RSS of detect_shots on a 2-minute and a 2-hour generated video, each in its own subprocess.

Usage: .venv/bin/python bench/shots_memory.py [--hours 2] [--no-append]
The videos are 160x90 at 10 fps (a 2-hour one is 72,000 frames) so that generating them stays quick;
analysis memory does not depend on the source resolution because decord resizes in the decoder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shots_corpus import make_texture

W, H, FPS = 160, 90, 10


def write_long_video(path: Path, seconds: int, seed: int = 3) -> None:
    """Panning textured scenes (the benchmark corpus's textures) with a cut every 4-12 s, as H.264."""
    rng = np.random.default_rng(seed)
    scenes = [make_texture(rng, H * 2, W * 4) for _ in range(6)]
    total = seconds * FPS
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23", "g": "50"}
        t, scene, next_cut, x = 0, 0, int(rng.integers(40, 120)), 0
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
            t += 1
        for packet in stream.encode():
            out.mux(packet)


CHILD = """
import sys, resource, time
from dataflux_pipelines.media.shots import detect_shots
t0 = time.perf_counter()
d = detect_shots(sys.argv[1])
print(d.frames, len(d.shots), round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(path: Path) -> tuple[int, int, float, int]:
    """Run detect_shots in a fresh interpreter; (frames, shots, seconds, peak RSS KiB of that child).

    The child reports its own ru_maxrss: RUSAGE_CHILDREN in this process is a maximum over all
    children so far, so it cannot show a second run using less than the first."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True, text=True)
    frames, shots, seconds, own = out.stdout.split()
    return int(frames), int(shots), float(seconds), int(own)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    env_path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    os.environ["PYTHONPATH"] = env_path
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, seconds in (("2 minutes", 120), (f"{args.hours:g} hours", int(args.hours * 3600))):
            path = Path(tmp) / f"long_{seconds}.mp4"
            t0 = time.perf_counter()
            write_long_video(path, seconds)
            gen = time.perf_counter() - t0
            frames, shots, secs, rss = measure(path)
            rows.append((label, frames, shots, secs, rss, gen))
            print(
                f"{label}: {frames} frames, {shots} shots, {secs:.1f} s, peak RSS {rss / 1024:.0f} MiB",
                file=sys.stderr,
            )
    base = rows[0][4]
    lines = [
        "| video | frames | shots found | detect_shots time (s) | peak RSS (MiB) | vs 2-minute video |",
        "|---|---|---|---|---|---|",
    ]
    for label, frames, shots, secs, rss, _ in rows:
        lines.append(f"| {label} | {frames} | {shots} | {secs:.1f} | {rss / 1024:.0f} | {rss / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        section = (
            f"\n## Shot detection peak memory ({dt.date.today().isoformat()}, bench/shots_memory.py)\n\n"
            f"Machine: {machine}. Generated H.264 videos, {W}x{H} at {FPS} fps (panning textures from bench/shots_corpus.py, a cut every "
            "4-12 s); each detect_shots run in its own Python subprocess, peak RSS from getrusage (ru_maxrss).\n\n"
            f"{table}\n"
        )
        target = root / "BENCHMARKS.md"
        if not target.exists():
            target.write_text("# Benchmarks\n")
        with target.open("a") as fh:
            fh.write(section)


if __name__ == "__main__":
    main()
