"""Retrieval benchmark for transcripts and on-screen text: queries that quote or paraphrase what files say
or show; recall@3 of the right asset, and of the right asset with the right time span (or page).

Library (generated here, no context text on any file): five spoken WAV clips and one narrated slide
video (espeak-ng, sentences at known times), three slide images, an image-only PDF scan of two pages,
and the nine demo distractors (videos, pictures, a tone WAV, a text PDF, a Markdown recipe). Processed
by `MediaPipeline` (the per-file stages without Dagster); searched through the service (hybrid: full
text, MiniLM, vision). The queries were written once, before the first run, and not changed after it.

Usage: PYTHONPATH=. .venv/bin/python bench/text_retrieval.py [--no-append]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import append_section

from dataflux_pipelines import text_samples as ts

CLIPS = {
    "ferry.wav": [
        "The ferry to the island leaves at half past nine from the north pier.",
        "Passengers should bring warm coats because the crossing is windy.",
    ],
    "library.wav": [
        "Please return your library books before the end of the month.",
        "Late returns cost fifty cents for each day.",
    ],
    "bakery.wav": [
        "The bakery on Elm Street sells fresh bread every morning.",
        "Their cinnamon rolls are gone by eight o'clock.",
    ],
    "museum.wav": [
        "Tomorrow the museum will open a new exhibition about ancient Egypt.",
        "Children under twelve can visit for free.",
    ],
    "train.wav": [
        "The train to the airport is delayed by twenty minutes.",
        "We apologise for the inconvenience to all travellers.",
    ],
}
NARRATION = [
    "Our new folding bicycle weighs only nine kilograms.",
    "It fits easily under a desk at the office.",
]
VIDEO_SLIDES = [
    ("Product launch", ["A lighter folding bicycle"]),
    ("Battery life", ["Forty hours on one charge"]),
]
SLIDES = {
    "solar.png": (
        "Solar panel installation",
        ["Mount the brackets on the roof", "Connect the inverter first"],
    ),
    "sales.png": (
        "Quarterly sales report",
        ["Revenue grew by twelve percent", "Costs fell in the third quarter"],
    ),
    "kitchen.png": (
        "Kitchen safety rules",
        ["Wash your hands before cooking", "Keep knives away from the edge"],
    ),
}
SCAN_PAGES = [
    ["Invoice number 4471", "Payment due within thirty days", "Bank transfer to Harbor Trust"],
    ["Meeting minutes", "The board approved the new playground", "Next meeting on the first of June"],
]
# (query, kind, file, sentence/slide/page index or None for a still image)
QUERIES = [
    ("ferry to the island leaves at half past nine", "quote", "ferry.wav", 0),
    ("what time does the boat depart for the island", "paraphrase", "ferry.wav", 0),
    ("bring warm coats because the crossing is windy", "quote", "ferry.wav", 1),
    ("dress warmly, the sea trip will be breezy", "paraphrase", "ferry.wav", 1),
    ("return your library books before the end of the month", "quote", "library.wav", 0),
    ("deadline for giving back borrowed books", "paraphrase", "library.wav", 0),
    ("late returns cost fifty cents", "quote", "library.wav", 1),
    ("fine for overdue items per day", "paraphrase", "library.wav", 1),
    ("bakery on Elm Street sells fresh bread", "quote", "bakery.wav", 0),
    ("where can I buy a fresh loaf in the morning", "paraphrase", "bakery.wav", 0),
    ("cinnamon rolls are gone by eight", "quote", "bakery.wav", 1),
    ("sweet pastries sell out early", "paraphrase", "bakery.wav", 1),
    ("new exhibition about ancient Egypt", "quote", "museum.wav", 0),
    ("pharaohs and pyramids show opening", "paraphrase", "museum.wav", 0),
    ("children under twelve can visit for free", "quote", "museum.wav", 1),
    ("kids get in without paying", "paraphrase", "museum.wav", 1),
    ("train to the airport is delayed by twenty minutes", "quote", "train.wav", 0),
    ("the rail service to the terminal is running late", "paraphrase", "train.wav", 0),
    ("folding bicycle weighs only nine kilograms", "quote", "launch.mp4", "say0"),
    ("how light is the new foldable bike", "paraphrase", "launch.mp4", "say0"),
    ("forty hours on one charge", "quote", "launch.mp4", "show1"),
    ("how long does the battery last", "paraphrase", "launch.mp4", "show1"),
    ("solar panel installation", "quote", "solar.png", None),
    ("putting photovoltaic modules on a house", "paraphrase", "solar.png", None),
    ("revenue grew by twelve percent", "quote", "sales.png", None),
    ("income went up this quarter", "paraphrase", "sales.png", None),
    ("wash your hands before cooking", "quote", "kitchen.png", None),
    ("hygiene rules for cooks", "paraphrase", "kitchen.png", None),
    ("payment due within thirty days", "quote", "scan.pdf", 1),
    ("when must the bill be paid", "paraphrase", "scan.pdf", 1),
    ("the board approved the new playground", "quote", "scan.pdf", 2),
    ("committee agreed to build a play area for children", "paraphrase", "scan.pdf", 2),
]


def build(folder: Path) -> dict[str, dict]:
    """Write the library; returns the truth spans (seconds) of every sentence and slide."""
    truth: dict[str, dict] = {}
    gap = np.zeros(int(ts.RATE * 1.0), np.float32)
    for name, sentences in CLIPS.items():
        parts, spans, t = [gap], [], len(gap) / ts.RATE
        for s in sentences:
            voice = ts.speak(s, speed=145)
            spans.append((t, t + len(voice) / ts.RATE))
            parts += [voice, gap]
            t += (len(voice) + len(gap)) / ts.RATE
        ts.write_wav(folder / name, np.concatenate(parts))
        truth[name] = {"spans": spans}
    parts, spans, t = [gap], [], len(gap) / ts.RATE
    for s in NARRATION:
        voice = ts.speak(s, speed=145)
        spans.append((t, t + len(voice) / ts.RATE))
        parts += [voice, gap]
        t += (len(voice) + len(gap)) / ts.RATE
    audio = np.concatenate(parts)
    half = len(audio) / ts.RATE / 2
    pictures = [(ts.slide(title, body, seed=20 + k), half) for k, (title, body) in enumerate(VIDEO_SLIDES)]
    ts.write_video(folder / "launch.mp4", pictures, audio)
    truth["launch.mp4"] = {"say": spans, "show": [(0.0, half), (half, 2 * half)]}
    for k, (name, (title, body)) in enumerate(SLIDES.items()):
        Image.fromarray(ts.slide(title, body, seed=30 + k)).save(folder / name)
    pages = [ts.page_picture(lines, seed=40 + k) for k, lines in enumerate(SCAN_PAGES)]
    (folder / "scan.pdf").write_bytes(ts.scan_pdf_bytes(pages))
    return truth


def span_ok(segment, truth: dict, target) -> bool:
    if target is None:
        return True  # a still image: the asset is the answer
    if isinstance(target, int):
        if "spans" in truth:
            a, b = truth["spans"][target]
            return segment.start_time is not None and segment.start_time < b and segment.end_time > a
        return segment.page == target
    kind, index = target[:-1], int(target[-1])
    a, b = truth[kind][index]
    return segment.start_time is not None and segment.start_time < b and segment.end_time > a


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        os.environ["DATAFLUX_HOME"] = str(tmp / "home")
        os.environ["DAGSTER_HOME"] = str(tmp / "dagster")
        (tmp / "dagster").mkdir()
        from dataflux_api.query.models import SearchRequest
        from dataflux_api.service import DataFlux
        from dataflux_pipelines.catalog import Catalog
        from dataflux_pipelines.landing import ingest_paths
        from dataflux_pipelines.objectstore import open_object_store
        from dataflux_pipelines.pipeline import MediaPipeline
        from dataflux_pipelines.samples import write_samples
        from dataflux_pipelines.settings import Settings

        library = tmp / "library"
        library.mkdir()
        truth = build(library)
        distractors = [
            p
            for p in write_samples(tmp / "distractors")
            if p.name not in ("solar_slide.png", "ferry_briefing.wav", "bicycle_launch.mp4")
        ]
        files = sorted(library.iterdir()) + distractors
        settings = dataclasses.replace(Settings.from_env(), lance_read_consistency_s=0.0)
        store, catalog = open_object_store(settings), Catalog(settings)
        ids: dict[str, str] = {}
        for f in files:
            for path, receipt in ingest_paths(store, catalog, [f]):  # no context text
                ids[path.name] = receipt.asset_id
        started = time.perf_counter()
        with MediaPipeline(settings) as pipeline:
            batch = list(ids.values())
            for stage in (pipeline.media_file, pipeline.segments, pipeline.segment_embeddings):
                outcomes = stage(batch)
                bad = {a: str(o.error) for a, o in outcomes.items() if not o.ok}
                assert not bad, bad
            pipeline.mark_done(outcomes)
        processing = time.perf_counter() - started
        name_of = {v: k for k, v in ids.items()}
        service = DataFlux(settings)
        rows = []
        stats = {kind: [0, 0, 0] for kind in ("quote", "paraphrase")}
        for query, kind, name, target in QUERIES:
            results = service.search(SearchRequest(query=query, limit=3)).results
            names = [name_of.get(r.id, "?") for r in results]
            asset_hit = name in names
            span_hit = False
            if asset_hit:
                result = results[names.index(name)]
                best = result.segments[0] if result.segments else None
                span_hit = best is not None and span_ok(best, truth.get(name, {}), target)
                where = (
                    f"page {best.page}"
                    if best and best.page is not None
                    else f"{best.start_time:.1f}-{best.end_time:.1f} s"
                    if best and best.start_time is not None
                    else (best.segment_type if best else "")
                )
            else:
                where = ""
            stats[kind][0] += 1
            stats[kind][1] += asset_hit
            stats[kind][2] += span_hit
            rows.append(
                f"| {query} | {kind} | {name} | {', '.join(names)} | {where} | {'yes' if span_hit else 'no'} |"
            )
    total = [sum(v[i] for v in stats.values()) for i in range(3)]
    lines = [
        f"\n## Retrieval by spoken and printed words (bench/text_retrieval.py, {dt.date.today().isoformat()})\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared). Library: {len(ids)} files, none with "
        f"context text (5 spoken WAV clips, 1 narrated slide video, 3 slide images, 1 two-page image-only "
        f"PDF scan, 9 demo distractors); processed in {processing:.0f} s by MediaPipeline on CPU. "
        f"{len(QUERIES)} queries written before the first run (quotes and paraphrases of the spoken or printed "
        "words). A hit needs the right file in the top 3; span = its best segment overlaps the sentence's or "
        "slide's true time span, or is the right page.\n",
        "| queries | n | recall@3 asset | recall@3 asset + span/page |",
        "|---|---|---|---|",
    ]
    for kind, (n, a, s) in stats.items():
        lines.append(f"| {kind} | {n} | {a / n:.3f} ({a}/{n}) | {s / n:.3f} ({s}/{n}) |")
    lines.append(f"| **all** | {total[0]} | **{total[1] / total[0]:.3f}** | **{total[2] / total[0]:.3f}** |")
    lines += [
        "",
        "| query | kind | truth | top 3 | best segment of the truth file | span ok |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))
    if not args.no_append:
        append_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
