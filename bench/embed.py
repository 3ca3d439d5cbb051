"""Embedding throughput end to end through `dataflux process`: many files per run vs one file per run.

For the offline profile (visual-offline + MiniLM) and a tiny CLIP built from a config, this
generates images and short videos, runs `dataflux ingest` + `dataflux process --json` as
subprocesses in fresh homes, and compares one run over all files with the same files processed
one run each (the reference). Where the time went comes from the per-asset metadata that the
pipeline records in Dagster (stage seconds; embedding load/decode/model/write seconds).

    .venv/bin/python bench/embed.py [--images 6] [--videos 2] [--video-seconds 4]

Prints a table and appends it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from media_factory import make_video  # noqa: E402
from report import append_section  # noqa: E402
from tiny_models import build_tiny_clip, textured_image  # noqa: E402

DATAFLUX = str(REPO / ".venv" / "bin" / "dataflux")


def make_corpus(root: Path, images: int, videos: int, video_seconds: float) -> dict[str, list[Path]]:
    (root / "images").mkdir(parents=True)
    (root / "videos").mkdir(parents=True)
    image_files = []
    for i in range(images):
        path = root / "images" / f"image_{i:03d}.jpg"
        textured_image(500 + i, size=(640, 480)).save(path, quality=90)
        image_files.append(path)
    video_files = [
        make_video(
            root / "videos" / f"video_{i:03d}.mp4",
            seconds=video_seconds,
            fps=25,
            size=(320 + 16 * i, 240),  # make_video has no seed: distinct sizes keep asset ids distinct
            scenes=3,
        )
        for i in range(videos)
    ]
    return {"images": image_files, "videos": video_files}


def run_cli(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any] | None]:
    started = time.perf_counter()
    done = subprocess.run([DATAFLUX, *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dataflux {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = None
    if "--json" in args and args[0] == "process":
        lines = done.stdout.splitlines()
        start = max(i for i, line in enumerate(lines) if line == "{")  # the report, after any log lines
        report = json.loads("\n".join(lines[start:]))
    return wall, report


def stage_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds per stage and embedding phase, summed over all partitions, from Dagster metadata."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    totals: dict[str, float] = defaultdict(float)
    with dg.DagsterInstance.get() as instance:
        for stage in ("media_file", "segments", "segment_embeddings", "graph_contributions"):
            records = instance.fetch_materializations(dg.AssetKey(stage), limit=10_000).records
            for record in records:
                meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
                if stage == "segment_embeddings":
                    for phase in ("load", "decode", "model", "write"):
                        totals[f"embed_{phase}"] += float(meta.get(f"{phase}_seconds") or 0.0)
                elif isinstance(meta.get("seconds"), int | float):
                    totals[stage] += float(meta["seconds"])
    return dict(totals)


def measure(kind: str, files: list[Path], profile_env: dict[str, str], one_per_run: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"bench-embed-{kind}-"))
    env = {
        **os.environ,
        **profile_env,
        "DATAFLUX_HOME": str(home / "home"),
        "DAGSTER_HOME": str(home / "dagster"),
        "HF_HUB_OFFLINE": "1",
        "DATAFLUX_DEVICE": "cpu",
    }
    wall = 0.0
    inner = 0.0
    runs = [files] if not one_per_run else [[f] for f in files]
    completed = 0
    for batch in runs:
        t_ingest, _ = run_cli(env, "ingest", *map(str, batch))
        t_process, report = run_cli(env, "process", "--json")
        assert report is not None
        wall += t_ingest + t_process
        inner += float(report["seconds"])
        completed += int(report["completed"])
    if completed != len(files):
        raise SystemExit(f"{kind}: only {completed} of {len(files)} files completed")
    phases = stage_seconds(home / "dagster")
    shutil.rmtree(home, ignore_errors=True)
    return {"wall": wall, "process": inner, "runs": len(runs), "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--video-seconds", type=float, default=6.0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    corpus = make_corpus(scratch / "corpus", args.images, args.videos, args.video_seconds)
    clip_dir = build_tiny_clip(scratch / "tiny-clip")
    profiles = {
        "offline": {"DATAFLUX_CLIP_MODEL": "dataflux-bench/not-on-this-machine"},
        "tiny-clip": {"DATAFLUX_CLIP_MODEL": str(clip_dir)},
    }
    video_minutes = args.videos * args.video_seconds / 60.0
    rows = []
    phase_rows = []
    for profile, env in profiles.items():
        for kind, files in corpus.items():
            if not files:
                continue
            batched = measure(kind, files, env, one_per_run=False)
            single = measure(kind, files, env, one_per_run=True)
            for mode, result in (("one run, all files", batched), ("one run per file", single)):
                if kind == "images":
                    rate = f"{len(files) / result['wall']:.3f} images/s"
                else:
                    rate = f"{video_minutes / (result['wall'] / 60):.3f} video-min/wall-min"
                rows.append((profile, kind, mode, result["runs"], result["wall"], result["process"], rate))
                phase_rows.append((profile, kind, mode, result["phases"]))
            rows.append(
                (
                    profile,
                    kind,
                    "speed-up (batched / per file)",
                    "",
                    single["wall"] / batched["wall"],
                    single["process"] / batched["process"],
                    "",
                )
            )
            print(rows[-3:], flush=True)

    lines = [
        f"## Embedding throughput through `dataflux process` ({dt.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, CPU only)",
        "",
        f"Corpus: {args.images} images 640×480 JPEG, {args.videos} videos of {args.video_seconds:g} s "
        "320×240 H.264 with 3 shots each. Wall = `dataflux ingest` + `dataflux process --json` as "
        "subprocesses (Python start-up included); process = the report's own seconds. Reference: the same "
        "files, one `ingest`+`process` per file. `bench/embed.py`.",
        "",
        "| profile | media | mode | runs | wall s | process s | throughput (wall) |",
        "|---|---|---|---|---|---|---|",
    ]
    for profile, kind, mode, runs, wall, process, rate in rows:
        if mode.startswith("speed-up"):
            lines.append(f"| {profile} | {kind} | **{mode}** | | **{wall:.2f}×** | **{process:.2f}×** | |")
        else:
            lines.append(f"| {profile} | {kind} | {mode} | {runs} | {wall:.1f} | {process:.1f} | {rate} |")
    lines += [
        "",
        "Where the time went (seconds summed over files, from the per-asset Dagster metadata; "
        "`embed_*` are the embedding stage's load/decode/model/write shares):",
        "",
        "| profile | media | mode | media_file | segments | embed_load | embed_decode | embed_model | embed_write | graph |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for profile, kind, mode, phases in phase_rows:
        cells = [
            phases.get(k, 0.0)
            for k in (
                "media_file",
                "segments",
                "embed_load",
                "embed_decode",
                "embed_model",
                "embed_write",
                "graph_contributions",
            )
        ]
        lines.append(f"| {profile} | {kind} | {mode} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    append_section(table)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
