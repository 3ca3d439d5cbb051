"""The graph publication as the library grows: the same new files published into libraries of 20 to 1,000+.

    .venv/bin/python bench/graph_publish.py [--sizes 20,200,1000] [--new 10] [--repeat 3] [--main /work/main]
        [--no-append]

The library is built the way the pipeline leaves it for the graph writer (catalog rows, three segments
per document, one contribution object per file, one auto collection holding every file) from synthetic
contributions shaped like a document's: NEXT between its chunks, three concepts per chunk out of 500,
ten SIMILAR_TO neighbours per chunk among the other files' chunks, a DUPLICATE_OF for one file in fifty.
No model runs, so what is measured is the publication alone.

At each size, `--repeat` times: `--new` files arrive (rows, contributions, the auto collection grows),
then three writers publish the same inputs, in rotating order, each into its own graph folder:
`full` (this branch, `publish_graph(full=True)`), `incremental` (this branch, `min_assets=0`: the
incremental path even below `INCREMENTAL_MIN_ASSETS`, where the default rebuilds whole), and with
`--main`, the code of that checkout in a subprocess (its second `publish_graph` of the same inputs,
timed alone: the first warms the process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from report import append_section  # noqa: E402

SEGMENTS = 3
CONCEPTS = 500
NEIGHBOURS = 10

MAIN_PUBLISH = """
import json, sys, time
import dataflux_pipelines
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph
from dataflux_pipelines.settings import Settings
settings = Settings.from_env(json.loads(sys.argv[1]))
catalog = Catalog(settings)
publish_graph(settings, catalog)  # warms the process: main's build is always whole, so both are equal
t0 = time.perf_counter()
publish_graph(settings, catalog)
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "code": dataflux_pipelines.__file__}))
"""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Library:
    """One catalog and object store; several graph writers (homes) over them."""

    def __init__(self, root: Path) -> None:
        from dataflux_pipelines.catalog import Catalog
        from dataflux_pipelines.objectstore import open_object_store
        from dataflux_pipelines.settings import Settings

        self.shared = {
            "DATAFLUX_OBJECT_STORE_URL": f"file://{root / 'store'}",
            "DATAFLUX_LANCE_URI": str(root / "lance"),
            "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0",
        }
        self.root = root
        self.settings = Settings.from_env({**self.shared, "DATAFLUX_HOME": str(root / "writer")})
        self.catalog = Catalog(self.settings)
        self.store = open_object_store(self.settings)
        self.segments: list[str] = []
        self.assets: list[str] = []
        self.rng = np.random.default_rng(7)

    def env(self, name: str) -> dict[str, str]:
        return {**self.shared, "DATAFLUX_HOME": str(self.root / name)}

    def add(self, count: int) -> None:
        from dataflux_pipelines import layout, records
        from dataflux_pipelines.graph.contrib import write_contribution
        from dataflux_pipelines.identity import asset_id_for_hash, collection_id_for, segment_id_for

        rows, segs, new = [], [], []
        for _ in range(count):
            n = len(self.assets)
            asset_id = asset_id_for_hash(f"{n:064x}")
            ids = [segment_id_for(asset_id, "chunk", i) for i in range(SEGMENTS)]
            rows.append(
                {
                    "id": asset_id,
                    "filename": f"doc{n}.txt",
                    "file_hash": asset_id,
                    "file_size": 1000,
                    "media_type": "document",
                    "mime_type": "text/plain",
                    "status": "completed",
                    "segment_count": SEGMENTS,
                }
            )
            segs += [
                {
                    "id": sid,
                    "asset_id": asset_id,
                    "segment_type": "chunk",
                    "sequence_number": i,
                    "media_type": "document",
                    "page": 1,
                    "search_text": f"doc{n}",
                }
                for i, sid in enumerate(ids)
            ]
            new.append((asset_id, ids))
            self.assets.append(asset_id)
        self.catalog.upsert_assets(rows)
        self.catalog.replace_segments_many([a for a, _ in new], segs)
        for asset_id, ids in new:
            others = self.segments
            edges: list[dict[str, Any]] = []
            for a, b in itertools.pairwise(ids):
                edges.append({"kind": "NEXT", "src": a, "dst": b, "score": None, "modality": None})
            for sid in ids:
                for c in self.rng.choice(CONCEPTS, 3, replace=False):
                    edges.append({"kind": "TAGGED", "src": sid, "dst": f"concept{c}", "score": 0.5})
                if others:
                    for j in self.rng.choice(len(others), min(NEIGHBOURS, len(others)), replace=False):
                        score = float(self.rng.uniform(0.6, 0.9))
                        edges.append(
                            {
                                "kind": "SIMILAR_TO",
                                "src": sid,
                                "dst": others[j],
                                "score": score,
                                "modality": "text",
                            }
                        )
            if others and self.rng.random() < 0.02:
                dst = others[int(self.rng.integers(len(others)))]
                edges.append(
                    {"kind": "DUPLICATE_OF", "src": ids[0], "dst": dst, "score": 0.97, "modality": "text"}
                )
            write_contribution(self.store, asset_id, edges)
            self.segments.extend(ids)
        # The auto collections are recomputed at each refresh: one that holds every file.
        now = dt.datetime.now(dt.UTC)
        table = self.catalog.table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA)
        row = {
            "id": collection_id_for("everything", True),
            "name": "everything",
            "auto_generated": True,
            "asset_ids": list(self.assets),
            "created_at": now,
            "updated_at": now,
        }
        import pyarrow as pa

        data = pa.Table.from_pylist([row], schema=records.COLLECTIONS_SCHEMA)
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)


def publish(lib: Library, writer: str, main: Path | None) -> tuple[float, dict[str, Any]]:
    from dataflux_pipelines.catalog import Catalog
    from dataflux_pipelines.graph.build import publish_graph
    from dataflux_pipelines.settings import Settings

    env = lib.env(writer)
    if writer == "main":
        assert main is not None
        out = subprocess.run(
            [sys.executable, "-c", MAIN_PUBLISH, json.dumps(env)],
            env={**os.environ, "PYTHONPATH": str(main)},
            cwd=main,  # `python -c` puts the working folder first on sys.path
            capture_output=True,
            text=True,
            check=True,
        )
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert answer["code"].startswith(str(main.resolve())), answer["code"]
        return float(answer["ms"]), {}
    settings = Settings.from_env(env)
    catalog = Catalog(settings)
    t0 = time.perf_counter()
    # min_assets=0: the incremental path at every size, to show where it overtakes the full build.
    report = publish_graph(settings, catalog, full=writer == "full", min_assets=0)
    took = (time.perf_counter() - t0) * 1000
    return took, {
        "mode": report.mode,
        "applied": report.assets_applied,
        "bytes": report.snapshot.path.stat().st_size,
    }


def listing_ms(lib: Library) -> tuple[float, float]:
    """What every publication reads whole: the contributions' listing, and the catalog's asset columns."""
    from dataflux_pipelines.graph.build import read_current
    from dataflux_pipelines.graph.contrib import list_contributions

    t0 = time.perf_counter()
    list_contributions(lib.store)
    t1 = time.perf_counter()
    read_current(lib.catalog, lib.store, set())
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200,1000")
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--main", type=Path, default=None, help="a checkout whose publish_graph is 'before'")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    writers = ["full", "incremental"] + (["main"] if args.main else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="graph-publish-") as tmp:
        lib = Library(Path(tmp))
        for size in sizes:
            lib.add(size - len(lib.assets) - args.new)
            for writer in writers:  # each writer's live snapshot holds the library before the new files
                publish(lib, writer, args.main)
            times: dict[str, list[float]] = {w: [] for w in writers}
            info: dict[str, dict[str, Any]] = {}
            loads = []
            for rep in range(args.repeat):
                lib.add(args.new)
                order = writers[rep % len(writers) :] + writers[: rep % len(writers)]
                loads.append(load())
                for writer in order:
                    took, meta = publish(lib, writer, args.main)
                    times[writer].append(took)
                    info[writer] = meta or info.get(writer, {})
            list_ms, current_ms = listing_ms(lib)
            row = {
                "size": len(lib.assets),
                "load": loads,
                **{f"{w}_ms": round(statistics.median(t), 1) for w, t in times.items()},
                "incremental_mode": info["incremental"].get("mode"),
                "applied": info["incremental"].get("applied"),
                "full_bytes": info["full"]["bytes"],
                "incremental_bytes": info["incremental"]["bytes"],
                "list_ms": round(list_ms, 1),
                "read_current_ms": round(current_ms, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = [
        f"\n## Graph publication of {args.new} new files by library size ({dt.date.today()}, "
        f"{platform.node()}, {os.cpu_count()} CPUs; `bench/graph_publish.py`, median of {args.repeat})\n",
        "| files after | load (1 min) | main (before) ms | full ms | incremental ms | path | applied "
        "| full / incremental bytes | contributions listing ms | catalog read ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {', '.join(x.split()[0] for x in r['load'])} | {r.get('main_ms', '-')} "
            f"| {r['full_ms']} | {r['incremental_ms']} | {r['incremental_mode']} | {r['applied']} "
            f"| {r['full_bytes']} / {r['incremental_bytes']} | {r['list_ms']} | {r['read_current_ms']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        append_section(text)


if __name__ == "__main__":
    main()
