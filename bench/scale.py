"""Overhead per file as the library grows: the same 100 new files arriving in a library of 100, 1,000 and 10,000.

    .venv/bin/python bench/scale.py [--sizes 100,1000,10000] [--new 100] [--data-dir DIR] [--no-append]

The library is built the way the pipeline leaves it (catalog rows, one segment each, originals in the
object store, one Dagster partition and materialization per file), from tiny generated PNGs, so what is
measured is bookkeeping, not decoding. At each size it times what a new batch costs (landing it,
planning it, a sensor tick, its status writes) and what a request costs (`dataflux status`, an assets
page over HTTP, the Dagster partitions page's GraphQL query, a backup), with peak RSS of this process
and of the API. Per-new-file rows must stay flat across sizes; whole-library rows (status lists
every asset, a backup copies everything) may grow at most linearly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from report import append_section  # noqa: E402
from search import free_port, wait_ready  # noqa: E402

NEW = 100
PARTITIONS_QUERY = """
query PartitionsPage($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
        }
      }
    }
  }
}
"""


def tiny_png(n: int) -> bytes:
    """An 8x8 PNG unique to n (about 100 bytes)."""
    rng = np.random.default_rng(n)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return (time.perf_counter() - t0) * 1000, value


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    return statistics.median(ms(fn)[0] for _ in range(repeat))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Library:
    """One DataFlux home + Dagster instance that grows between measurements."""

    def __init__(self, root: Path) -> None:
        import dagster as dg

        from dataflux_pipelines.catalog import Catalog
        from dataflux_pipelines.objectstore import open_object_store
        from dataflux_pipelines.settings import Settings

        self.root = root
        self.env = {
            "DATAFLUX_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster"),
            "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0",
        }
        os.environ.update(self.env)
        (root / "dagster").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "dagster_home" / "dagster.yaml", root / "dagster" / "dagster.yaml")
        self.settings = Settings.from_env(self.env)
        self.catalog = Catalog(self.settings)
        self.store = open_object_store(self.settings)
        self.instance = dg.DagsterInstance.get()
        self.size = 0
        self.serial = 0

    def _ids(self, count: int) -> list[tuple[str, bytes]]:
        from dataflux_pipelines.identity import asset_id_for_hash, sha256_chunks

        out = []
        for _ in range(count):
            data = tiny_png(self.serial)
            self.serial += 1
            out.append((asset_id_for_hash(sha256_chunks([data])), data))
        return out

    def grow_to(self, size: int) -> float:
        """Add processed files until the library holds `size`; returns the seconds it took."""
        import dagster as dg

        from dataflux_pipelines import layout
        from dataflux_pipelines.embeddings.indexes import maintain_indexes
        from dataflux_pipelines.identity import segment_id_for
        from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, partition_key

        started = time.perf_counter()
        while self.size < size:
            batch = self._ids(min(2000, size - self.size))
            assets, segments, keys = [], [], []
            for asset_id, data in batch:
                name = f"file{self.serial}.png"
                original = layout.original_key(asset_id, ".png")
                self.store.put_bytes(original, data)
                assets.append(
                    {
                        "id": asset_id,
                        "filename": name,
                        "file_hash": asset_id,
                        "file_size": len(data),
                        "mime_type": "image/png",
                        "media_type": "image",
                        "status": "completed",
                        "storage_path": original,
                        "priority": 5,
                        "segment_count": 1,
                    }
                )
                segments.append(
                    {
                        "id": segment_id_for(asset_id, "image", 0),
                        "asset_id": asset_id,
                        "segment_type": "image",
                        "sequence_number": 0,
                        "media_type": "image",
                        "search_text": name,
                    }
                )
                keys.append(partition_key(asset_id, name))
            self.catalog.upsert_assets(assets)
            self.catalog.replace_segments_many([a["id"] for a in assets], segments)
            self.instance.add_dynamic_partitions(MEDIA_PARTITIONS, keys)
            for key in keys:
                self.instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key="media_file", partition=key)
                )
            self.size += len(batch)
        maintain_indexes(self.catalog.db)  # what the shared index asset does after processing
        return time.perf_counter() - started

    def land(self, count: int, folder: Path | None = None) -> list[str]:
        """New files: written into `folder` (to ingest) or straight into landing (a plain copy)."""
        from dataflux_pipelines import layout

        batch = self._ids(count)
        keys = []
        for n, (_, data) in enumerate(batch):
            name = f"new{self.serial}-{n}.png"
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            else:
                key = f"{layout.LANDING_PREFIX}drop/{name}"
                self.store.put_bytes(key, data)
                keys.append(key)
        return [a for a, _ in batch]

    def settle(self, asset_ids: list[str]) -> None:
        """What processing would leave: landing emptied, rows completed, one partition each."""
        from dataflux_pipelines.landing import sidecar_key
        from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, partition_key

        rows = self.catalog.get_assets(asset_ids)
        for row in rows:
            if row.get("landing_key"):
                self.store.delete(row["landing_key"])
                self.store.delete(sidecar_key(row["landing_key"]))
        self.catalog.update_assets(
            {r["id"]: {"landing_key": None, "status": "completed", "media_type": "image"} for r in rows}
        )
        self.instance.add_dynamic_partitions(
            MEDIA_PARTITIONS, [partition_key(r["id"], r["filename"]) for r in rows]
        )
        self.size += len(rows)


def measure_batch(lib: Library, new: int) -> dict[str, float]:
    """The cost of one batch of `new` files arriving, per file where the work is per file."""
    import dagster as dg

    from dataflux_api.service import DataFlux
    from dataflux_pipelines.landing import plan_runs
    from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, asset_id_of
    from dataflux_pipelines.orchestration.resources import StoresResource
    from dataflux_pipelines.orchestration.sensors import landing_sensor
    from dataflux_pipelines.records import Status

    out: dict[str, float] = {}
    service = DataFlux(lib.settings)
    inbox = lib.root / f"inbox-{lib.serial}"
    ingested = lib.land(new, inbox)
    t, results = ms(lambda: list(service.ingest_files([inbox])))
    assert sum(1 for r in results if r["asset_id"] and not r["refused"]) == new, results[:2]
    out["ingest"] = t / new
    copied = lib.land(new)
    known = {asset_id_of(k) for k in lib.instance.get_dynamic_partitions(MEDIA_PARTITIONS)}
    t, plan = ms(lambda: plan_runs(lib.store, lib.catalog, known, settle_seconds=0))
    assert len(plan.new_partitions) == 2 * new, len(plan.new_partitions)
    out["plan"] = t / (2 * new)
    lib.settle(ingested + copied)

    ticked = lib.land(new)
    time.sleep(2.1)  # the sensor waits for landing objects to settle (2 s without a change)
    resources = {"stores": StoresResource(home=str(lib.settings.home))}

    def tick() -> dg.SensorResult:
        context = dg.build_sensor_context(instance=lib.instance, resources=resources)
        return landing_sensor(context)

    t, result = ms(tick)
    assert sum(len(r.partition_keys or []) for r in result.dynamic_partitions_requests) == new
    out["sensor_tick"] = t / new
    lib.settle(ticked)
    out["sensor_tick_idle"] = median_ms(tick, 3)

    inbox = lib.root / f"inbox-{lib.serial}"
    statuses = lib.land(new, inbox)
    list(service.ingest_files([inbox]))
    t, _ = ms(lambda: lib.catalog.set_status(statuses, Status.PROCESSING))
    out["status_write"] = t / new
    lib.settle(statuses)
    return out


def measure_requests(lib: Library, repeat: int) -> dict[str, float]:
    """What one request costs at this library size."""
    import httpx
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from dataflux_pipelines.orchestration.backup import create_backup

    out: dict[str, float] = {}
    env = {**os.environ, **lib.env, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "dataflux_api.cli.main", "status", "--json"]

    def status() -> None:
        proc = subprocess.run(cli, env=env, capture_output=True, text=True, check=True)
        assert len(json.loads(proc.stdout)["assets"]) == lib.size

    out["status_cli"] = median_ms(status, 3)

    port = free_port()
    log = (lib.root / "api.log").open("a")
    api = subprocess.Popen(
        [sys.executable, "-m", "dataflux_api.cli.main", "api", "--port", str(port), "--no-warm"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=120) as client:
            wait_ready(client, base, api)
            last = max(lib.size // 20, 1)

            def page(n: int) -> Callable[[], None]:
                def get() -> None:
                    r = client.get(f"{base}/api/v1/assets", params={"page": n, "limit": 20})
                    r.raise_for_status()
                    assert r.json()["pagination"]["total"] == lib.size

                return get

            page(1)()
            out["assets_page_1"] = median_ms(page(1), repeat)
            out["assets_page_last"] = median_ms(page(last), repeat)
            out["api_peak_rss"] = proc_peak_rss_mib(api.pid)
    finally:
        api.terminate()
        api.wait(30)

    definitions = str(REPO / "dataflux_pipelines" / "orchestration" / "definitions.py")
    with define_out_of_process_context(definitions, "defs", lib.instance) as context:

        def partitions() -> None:
            result = execute_dagster_graphql(context, PARTITIONS_QUERY, {"path": ["media_file"]})
            node = result.data["assetNodeOrError"]
            assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == lib.size, result
            assert len(node["assetPartitionStatuses"]["materializedPartitions"]) >= 1

        partitions()
        out["partitions_graphql"] = median_ms(partitions, repeat)

    def backup() -> None:
        dest = Path(tempfile.mkdtemp(dir=lib.root, prefix="backup-"))
        create_backup(lib.settings, dest)
        shutil.rmtree(dest)

    out["backup"] = median_ms(backup, 1)
    return out


ROWS = [
    # key, label, unit, scope: "new" (per new file: flat), "request" (flat), "library" (at most linear)
    ("ingest", "`dataflux ingest` (copy + catalog row)", "ms / new file", "new"),
    ("plan", "planning (`landing.plan_runs`, incl. registering plain copies)", "ms / new file", "new"),
    ("sensor_tick", "landing sensor tick with 100 new files", "ms / new file", "new"),
    ("sensor_tick_idle", "landing sensor tick, nothing new", "ms / tick", "request"),
    ("status_write", "catalog status write (`set_status`)", "ms / new file", "new"),
    ("assets_page_1", "`GET /api/v1/assets` first page (20)", "ms / request", "request"),
    ("assets_page_last", "`GET /api/v1/assets` last page", "ms / request", "request"),
    (
        "partitions_graphql",
        "Dagster partitions page (GraphQL, all keys + statuses)",
        "ms / request",
        "library",
    ),
    ("status_cli", "`dataflux status --json` (lists every asset)", "ms / call", "library"),
    ("backup", "`create_backup` (no objects)", "ms / backup", "library"),
    ("api_peak_rss", "API peak RSS", "MiB", "library"),
    ("bench_peak_rss", "this process's peak RSS (cumulative)", "MiB", "library"),
]


def table(sizes: list[int], results: dict[int, dict[str, float]], new: int) -> str:
    first, last = sizes[0], sizes[-1]
    head = " | ".join(f"{s:,} files" for s in sizes)
    lines = [
        f"| measure | unit | {head} | {last:,} / {first:,} | allowed |",
        "|---|---|" + "---|" * len(sizes) + "---|---|",
    ]
    for key, label, unit, scope in ROWS:
        cells = " | ".join(f"{results[s][key]:.1f}" for s in sizes)
        growth = results[last][key] / max(results[first][key], 1e-9)
        allowed = (
            "flat (per new file)"
            if scope == "new"
            else ("flat" if scope == "request" else f"<= {last / first:.0f}x")
        )
        lines.append(f"| {label} | {unit} | {cells} | {growth:.2f}x | {allowed} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--new", type=int, default=NEW)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--data-dir", type=Path, default=None, help="where the library lives (default: a temp dir)"
    )
    ap.add_argument("--label", default="", help="said in the section title (e.g. before / after)")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="dataflux-bench-scale-"))
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: the bench builds its library from nothing")
    root.mkdir(parents=True, exist_ok=True)
    lib = Library(root)
    results: dict[int, dict[str, float]] = {}
    loads = []
    for size in sizes:
        built = lib.grow_to(size)
        print(f"library at {lib.size:,} files (built in {built:.1f} s); measuring ...", flush=True)
        row = measure_batch(lib, args.new)
        row.update(measure_requests(lib, args.repeat))
        row["bench_peak_rss"] = peak_rss_mib()
        results[size] = row
        loads.append(os.getloadavg()[0])
        print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
    text = table(sizes, results, args.new)
    print(text)
    if not args.no_append:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}"
        load = ", ".join(f"{x:.1f}" for x in loads)
        section = (
            f"\n## Overhead per file as the library grows{' (' + args.label + ')' if args.label else ''} "
            f"({dt.date.today().isoformat()}, bench/scale.py)\n\n"
            f"Machine: {machine}; 1-minute load as each size finished: {load}. Library: tiny generated PNGs "
            f"(8x8), each with a completed catalog row, one segment, its original in the object store and one "
            f"Dagster partition with a materialization; indexes by `maintain_indexes`. Each size then receives "
            f"{args.new} new files per measure (ingested, or plain copies into landing). Medians of "
            f"{args.repeat} requests; the API is `dataflux api --no-warm` over loopback; the GraphQL query runs "
            f"against an out-of-process code location.\n\n{text}\n"
        )
        append_section(section)


if __name__ == "__main__":
    main()
