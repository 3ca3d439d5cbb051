"""Ingest end to end (`dataflux process`) against its compute floor, measured in the same run.

For each media kind (generated 1920×1080 JPEGs, short H.264 videos, WAV audio, Markdown and PDF
documents) this lands the files with `dataflux ingest`, then times `dataflux process --json` as a
subprocess (Python start-up, Dagster, model loads and the shared refresh included) with its peak RSS,
and a second `process` with nothing to do. The floor runs in its own subprocess over the same files:
the same functions the pipeline calls (hash, probe, `analyze_file`, `read_text`, the segment rows and
object writes, `embed_segments`, `graph_contribution`), in a plain loop in one process, with the
models loaded before the clock starts and each table written once. With `--before PATH` the same
end-to-end run is repeated with another checkout's code (e.g. the commit before a change), so a
before/after ratio comes from the same machine load.

    .venv/bin/python bench/ingest.py [--images 100] [--videos 3] [--audio 3] [--documents 20]

Prints a table and appends it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from report import append_section  # noqa: E402

PYTHON = sys.executable
KINDS = ("images", "videos", "audio", "documents")


# --- the corpus ------------------------------------------------------------------------------
def make_corpus(root: Path, args: argparse.Namespace) -> dict[str, list[Path]]:
    from media_factory import make_markdown, make_pdf, make_video, make_wav, prose
    from tiny_models import textured_image

    out: dict[str, list[Path]] = {k: [] for k in KINDS}
    for kind in KINDS:
        (root / kind).mkdir(parents=True)
    for i in range(args.images):
        path = root / "images" / f"photo_{i:03d}.jpg"
        textured_image(9000 + i, size=(1920, 1080)).save(path, quality=90)
        out["images"].append(path)
    for i in range(args.videos):
        # make_video has no seed: distinct sizes keep the asset ids distinct.
        size = (640 + 16 * i, 360)
        out["videos"].append(
            make_video(
                root / "videos" / f"clip_{i}.mp4", seconds=args.video_seconds, fps=25, size=size, scenes=4
            )
        )
    for i in range(args.audio):
        pattern = [("speech", 6.0), ("chord", 4.0 + i), ("silence", 2.0), ("bursts", 4.0)] * 2
        out["audio"].append(make_wav(root / "audio" / f"sound_{i}.wav", pattern))
    for i in range(args.documents):
        if i % 4 == 3:
            # prose() cycles a few sentences, so pages of different seeds repeat: a unique line per page.
            pages = [f"Report {i}, page {p + 1}. " + prose(220, seed=i * 7 + p) for p in range(3)]
            out["documents"].append(make_pdf(root / "documents" / f"report_{i}.pdf", pages))
        else:
            path = make_markdown(root / "documents" / f"notes_{i}.md", sections=3, words_per_section=180 + i)
            # prose() rounds word counts, so neighbours could be the same bytes (one asset): a unique line.
            path.write_text(
                f"Field notes number {i}.\n\n" + path.read_text(encoding="utf-8"), encoding="utf-8"
            )
            out["documents"].append(path)
    return out


def video_minutes(files: list[Path]) -> float:
    import av

    total = 0.0
    for path in files:
        with av.open(str(path)) as container:
            total += float(container.duration or 0) / 1e6
    return total / 60.0


# --- end to end --------------------------------------------------------------------------------
def _env(home: Path, code: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "DATAFLUX_HOME": str(home / "home"),
        "DAGSTER_HOME": str(home / "dagster"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DATAFLUX_DEVICE": os.environ.get("DATAFLUX_DEVICE", "cpu"),
    }


def _watched(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str, int, int]:
    """Run a command; wall seconds, stdout, peak RSS of the process and of its whole tree (bytes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    watched = psutil.Process(proc.pid)
    peak_main = peak_tree = 0
    chunks: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout else ""))
    reader.start()
    while proc.poll() is None:
        try:
            main = watched.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in watched.children(recursive=True))
        except psutil.Error:
            main = tree = 0
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        time.sleep(0.1)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # 1: some file failed, which the report says
        raise SystemExit(f"{' '.join(argv)} failed with {proc.returncode}")
    return wall, "".join(chunks), peak_main, peak_tree


def _report(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")  # the report, after any log lines
    return json.loads("\n".join(lines[start:]))


def end_to_end(
    kind: str, files: list[Path], code: Path, scratch: Path, *, idle: bool = True
) -> dict[str, Any]:
    """One `dataflux process --json` over freshly landed files; with `idle`, then one with nothing to do."""
    home = scratch / f"e2e-{kind}-{code.name}"
    env = _env(home, code)
    cli = [PYTHON, "-m", "dataflux_api.cli.main"]
    # `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH: run in the checkout
    # measured, or a --before run started from another checkout would import that one's code.
    subprocess.run([*cli, "ingest", *map(str, files)], env=env, cwd=code, check=True, capture_output=True)
    wall, stdout, peak_main, peak_tree = _watched([*cli, "process", "--json"], env, code)
    report = _report(stdout)
    if report["completed"] != len(files):
        raise SystemExit(f"{kind}: {report['completed']} of {len(files)} completed: {report['failures'][:3]}")
    out: dict[str, Any] = {"wall": wall, "peak_main": peak_main, "peak_tree": peak_tree, "report": report}
    if idle:
        idle_wall, idle_out, _, _ = _watched([*cli, "process", "--json"], env, code)
        out.update(idle_wall=idle_wall, idle_report=_report(idle_out))
    shutil.rmtree(home, ignore_errors=True)
    return out


# --- the floor -------------------------------------------------------------------------------
def floor(files: list[Path], home: Path) -> dict[str, Any]:
    """The same work as the pipeline, called directly in a loop in this process (see the docstring)."""
    from dataflux_pipelines import layout
    from dataflux_pipelines.catalog import Catalog
    from dataflux_pipelines.embeddings.stage import embed_segments
    from dataflux_pipelines.graph.contrib import graph_contribution
    from dataflux_pipelines.identity import asset_id_for_hash, sha256_file
    from dataflux_pipelines.media.analyze import analyze_file, sniff_and_probe
    from dataflux_pipelines.media.types import AnalysisOptions
    from dataflux_pipelines.models.registry import ModelRegistry
    from dataflux_pipelines.pipeline import MediaPipeline, stored_fields
    from dataflux_pipelines.records import Status
    from dataflux_pipelines.settings import Settings
    from dataflux_pipelines.text_stage import TextInput, read_text

    settings = Settings.from_env().with_home(home)
    started = time.perf_counter()
    registry = ModelRegistry(settings)
    for role in ("text", "vision", "image_model", "ocr", "whisper", "vad"):
        getattr(registry, role)
    catalog = Catalog(settings)
    # Only its row builder and object store are used: the same segment rows and object writes.
    pipeline = MediaPipeline(settings, registry=registry, catalog=catalog)
    load_s = time.perf_counter() - started
    options = AnalysisOptions.from_settings(settings)

    started = time.perf_counter()
    assets: list[dict[str, Any]] = []
    items: list[TextInput] = []
    for path in files:
        sha = sha256_file(path)
        probe = sniff_and_probe(str(path))
        asset_id = asset_id_for_hash(sha)
        key = layout.original_key(asset_id, probe.extension)
        pipeline.store.put_file(key, path)
        fields = stored_fields(probe, sha, path.stat().st_size, key)
        assets.append({"id": asset_id, "filename": path.name, "status": Status.COMPLETED.value, **fields})
        items.append(TextInput(asset_id, path, analyze_file(str(path), probe, options)))
    read_text(items, registry, max_segments=options.max_segments)
    segment_rows: dict[str, list[dict[str, Any]]] = {}
    updates: dict[str, dict[str, Any]] = {}
    for row, item in zip(assets, items, strict=True):
        pipeline._rows_one(row, item.asset_id, item.analysis, segment_rows, updates)
        row.update(updates[item.asset_id])
    catalog.upsert_assets(assets)
    ids = [a["id"] for a in assets]
    catalog.replace_segments_many(ids, [r for a in ids for r in segment_rows[a]])
    embed_segments(catalog.db, registry, ids, pipeline.store.get_bytes)
    for asset_id in ids:
        graph_contribution(settings, catalog, asset_id, store=pipeline.store)
    return {"seconds": time.perf_counter() - started, "load_s": load_s}


def run_floor(kind: str, files: list[Path], scratch: Path) -> dict[str, Any]:
    home = scratch / f"floor-{kind}"
    env = _env(home, REPO)
    argv = [PYTHON, str(Path(__file__).resolve()), "--floor-of", str(home), *map(str, files)]
    wall, stdout, _, peak_tree = _watched(argv, env)
    shutil.rmtree(home, ignore_errors=True)
    return {**json.loads(stdout.strip().splitlines()[-1]), "wall": wall, "peak_tree": peak_tree}


def _each(side: dict[str, Any]) -> str:
    return f" [{', '.join(f'{v:.1f}' for v in side['all'])}]" if len(side.get("all", [])) > 1 else ""


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median of the runs' `key` (of two: their mean), every run's `key` beside it (`all`), the
    peak RSS of the worst run, and the rest (profile, idle figures) from the first run."""
    merged = dict(runs[0])
    merged[key] = statistics.median(r[key] for r in runs)
    merged["all"] = [round(r[key], 2) for r in runs]
    for peak in ("peak_main", "peak_tree"):
        if peak in merged:
            merged[peak] = max(r[peak] for r in runs)
    return merged


# --- the table -------------------------------------------------------------------------------
def _rate(kind: str, n: int, minutes: float, seconds: float) -> str:
    if kind == "videos":
        return f"{minutes / (seconds / 60):.2f} video-min/min"
    return f"{n / seconds:.2f} files/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--video-seconds", type=float, default=20.0)
    parser.add_argument("--audio", type=int, default=3)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--before", type=Path, help="another checkout: its `dataflux process`, same files")
    parser.add_argument("--before-kinds", default=",".join(KINDS), help="the kinds run with --before too")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each side per kind, taking turns (median reported)"
    )
    parser.add_argument("--corpus", type=Path, help="reuse a corpus folder this script made earlier")
    parser.add_argument("--results", type=Path, help="also keep the raw results here (JSON, after each kind)")
    parser.add_argument("--render", type=Path, help="only print and append the table of saved --results")
    parser.add_argument("--floor-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_of:
        print(json.dumps(floor(args.files, args.floor_of)))
        return

    if args.render:
        saved = json.loads(args.render.read_text())
        render(saved["results"], saved["args"], saved["load"])
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if args.corpus:
        corpus = {k: sorted((args.corpus / k).iterdir()) for k in KINDS if (args.corpus / k).is_dir()}
    else:
        corpus = make_corpus(scratch / "corpus", args)
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    described = {
        "images": len(corpus.get("images", [])),
        "videos": len(corpus.get("videos", [])),
        "video_seconds": args.video_seconds,
        "audio": len(corpus.get("audio", [])),
        "documents": len(corpus.get("documents", [])),
        "before": str(args.before) if args.before else None,
        "repeats": args.repeats,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "command": "bench/ingest.py " + " ".join(sys.argv[1:]),
    }
    before_kinds = set(args.before_kinds.split(",")) if args.before else set()
    for kind in args.kinds.split(","):
        files = corpus.get(kind, [])
        if not files:
            continue
        minutes = video_minutes(files) if kind == "videos" else 0.0
        sides = ["after", "floor", *(["before"] if kind in before_kinds else [])]
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        # The sides take turns, mirrored (after, floor, [before], [before], floor, after for 2 repeats):
        # each side's runs are centred on the same moment, so a load that drifts linearly through
        # the kind's runs moves every side alike and leaves the ratios alone.
        order = [side for i in range(args.repeats) for side in (sides if i % 2 == 0 else sides[::-1])]
        for side in order:
            first = not runs[side]
            if side == "floor":
                runs[side].append(run_floor(kind, files, scratch))
            else:
                code = REPO if side == "after" else args.before.resolve()
                runs[side].append(end_to_end(kind, files, code, scratch, idle=first))
            load = max(load, os.getloadavg()[0])
        result: dict[str, Any] = {"files": len(files), "minutes": minutes, "order": order}
        for side, done in runs.items():
            result[side] = _median_run(done, "seconds" if side == "floor" else "wall")
        results[kind] = result
        after, fl = result["after"]["wall"], result["floor"]["seconds"]
        print(f"{kind}: end to end {after:.1f} s, floor {fl:.1f} s (medians of {args.repeats})", flush=True)
        if args.results:
            args.results.write_text(json.dumps({"results": results, "args": described, "load": load}))
    render(results, described, load)
    shutil.rmtree(scratch, ignore_errors=True)


def render(results: dict[str, dict[str, Any]], args: dict[str, Any], load: float) -> None:
    """Print the tables and append them to BENCHMARKS.md."""
    mib = 1024 * 1024
    lines = [
        f"## Ingest end to end vs its compute floor ({dt.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, CPU only, load average up to {load:.1f} from other work)",
        "",
        f"Generated corpus: {args['images']} JPEG 1920×1080, {args['videos']} H.264 videos of "
        f"{args['video_seconds']:g} s 640×360 (4 shots, AAC), {args['audio']} WAVs of ~36 s, {args['documents']} "
        "documents (3 in 4 Markdown, the rest 3-page PDFs). End to end: `dataflux process --json` as a "
        "subprocess after `dataflux ingest` (start-up, Dagster, model loads and the shared refresh "
        "included). Floor: the same functions in a plain loop in one process, models loaded before the "
        "clock (`bench/ingest.py`). Ratio = end-to-end rate / floor rate (target ≥ 0.7). "
        f"Commit {args.get('commit') or '?'}; `{args.get('command') or 'bench/ingest.py'}`. "
        + (
            f"Each side ran {args['repeats']} times per kind, taking turns in mirrored order "
            f"({', '.join(next(iter(results.values())).get('order', []))}); the seconds are medians, "
            "each run's in brackets."
            if args.get("repeats")
            else ""
        ),
        "",
        "| media | files | end to end s | rate | floor s (+ model load) | floor rate | ratio | "
        "peak RSS process / all | start-up s | first file touched s | nothing to do s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        after, fl = r["after"], r["floor"]
        timings = after["report"].get("timings", {})
        ratio = fl["seconds"] / after["wall"]
        lines.append(
            f"| {kind} | {r['files']} | {after['wall']:.1f}{_each(after)} "
            f"| {_rate(kind, r['files'], r['minutes'], after['wall'])} "
            f"| {fl['seconds']:.1f}{_each(fl)} (+{fl['load_s']:.1f}) "
            f"| {_rate(kind, r['files'], r['minutes'], fl['seconds'])} "
            f"| **{ratio:.2f}** | {after['peak_main'] / mib:.0f} / {after['peak_tree'] / mib:.0f} MiB "
            f"| {timings.get('startup_s', float('nan')):.1f} | {timings.get('first_file_touched_s', float('nan')):.1f} "
            f"| {after.get('idle_wall', float('nan')):.1f} |"
        )
    if any("before" in r for r in results.values()):
        lines += [
            "",
            f"Before/after, same files, same run (`--before` = {args['before']}):",
            "",
            "| media | before s | after s | speed-up | before peak RSS all | after peak RSS all | "
            "before nothing-to-do s | after nothing-to-do s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for kind, r in results.items():
            if "before" not in r:
                continue
            b, a = r["before"], r["after"]
            lines.append(
                f"| {kind} | {b['wall']:.1f}{_each(b)} | {a['wall']:.1f}{_each(a)} | **{b['wall'] / a['wall']:.2f}×** | "
                f"{b['peak_tree'] / mib:.0f} MiB | {a['peak_tree'] / mib:.0f} MiB | {b['idle_wall']:.1f} | "
                f"{a['idle_wall']:.1f} |"
            )
    lines += [
        "",
        "Where the time went after (seconds summed over files, from `dataflux process --json`):",
        "",
    ]
    for side in ("after", "before"):
        if side == "before":
            if not any("before" in r for r in results.values()):
                break
            lines += ["", "Where the time went before (the `--before` checkout, same files):", ""]
        for kind, r in results.items():
            if side not in r:
                continue
            report = r[side]["report"]
            lines.append(
                f"- {kind}: timings {json.dumps(report.get('timings', {}))}; profile "
                f"{json.dumps(report.get('profile', {}), sort_keys=True)}"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    append_section(table)


if __name__ == "__main__":
    main()
