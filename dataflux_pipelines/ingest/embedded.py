"""Embedded mode: evaluate the landing exactly as the sensor does and run the work in this process.

The runs go to the same Dagster instance as the daemon's, so the UI shows them, their
partitions and their metadata just the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.contract import Status
from dataflux_pipelines.ingest.landing import (
    LandingPlan,
    PendingFile,
    clear_obsolete_requests,
    clear_reanalysis_request,
    drop_duplicates,
    plan_landing,
)
from dataflux_pipelines.ingest.partitions import MEDIA_PARTITIONS, RANGE_END, RANGE_START
from dataflux_pipelines.ingest.sensors import EMBEDDING_STAGES, run_requests_for
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.settings import Settings

# The terminal shows each stage's progress lines; Dagster's step-by-step DEBUG events stay in the UI.
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

Progress = Callable[[int, int, dict[str, int]], None]


@dataclass
class ProcessReport:
    runs: int = 0
    files: int = 0
    completed: int = 0
    failed: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    shared_runs: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def contiguous_ranges(keys: Sequence[str], order: Sequence[str]) -> list[tuple[str, str]]:
    """Split a set of partition keys into ranges of Dagster's partition order that hold only them."""
    wanted = set(keys)
    ranges: list[tuple[str, str]] = []
    start = prev = None
    for key in order:
        if key in wanted:
            if start is None:
                start = key
            prev = key
        elif start is not None:
            ranges.append((start, prev))  # type: ignore[arg-type]
            start = None
    if start is not None:
        ranges.append((start, prev))  # type: ignore[arg-type]
    return ranges


def _run_tags_for(keys: Sequence[str], order: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for start, end in contiguous_ranges(keys, order):
        if start == end:
            out.append({"dagster/partition": start})
        else:
            out.append({RANGE_START: start, RANGE_END: end})
    return out


class _Watcher:
    """Reports catalog progress of the running files while a run executes in another thread."""

    def __init__(self, catalog: Catalog, asset_ids: Sequence[str], progress: Progress | None) -> None:
        self.catalog = catalog
        self.asset_ids = list(asset_ids)
        self.progress = progress
        self.stop = threading.Event()

    def poll(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for start in range(0, len(self.asset_ids), 500):
            for row in self.catalog.get_assets(self.asset_ids[start : start + 500]):
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def run(self) -> None:
        while not self.stop.wait(0.5):
            if self.progress:
                counts = self.poll()
                done = counts.get(Status.COMPLETED.value, 0) + counts.get(Status.FAILED.value, 0)
                self.progress(done, len(self.asset_ids), counts)


def execute_runs(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    tag_sets: Sequence[dict[str, str]],
    *,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    job = defs.resolve_job_def(job_name)
    results = []
    for tags in tag_sets:
        partition_key = tags.get("dagster/partition")
        run_tags = {k: v for k, v in tags.items() if k != "dagster/partition"}
        run_tags["dataflux/launched_by"] = "dataflux process"
        results.append(
            job.execute_in_process(
                instance=instance,
                partition_key=partition_key,
                tags=run_tags,
                asset_selection=list(asset_selection) if asset_selection else None,
                raise_on_error=False,
                run_config=CONSOLE_INFO,
            )
        )
    return results


def process_landing(
    settings: Settings,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    *,
    stale: bool = False,
    progress: Progress | None = None,
) -> ProcessReport:
    """Materialize what the sensor would request now (and, with `stale`, re-embed stale files)."""
    started = time.perf_counter()
    store = open_object_store(settings)
    catalog = Catalog(settings)
    known = set(instance.get_dynamic_partitions(MEDIA_PARTITIONS))
    plan: LandingPlan = plan_landing(store, catalog, known, settle_seconds=0)
    drop_duplicates(store, plan)
    clear_obsolete_requests(store, plan)
    # Queued files whose partition exists but whose run never happened (a stopped daemon).
    planned = {p.asset_id for p in plan.pending}
    recovered = [
        row["id"]
        for row in catalog.find_assets(f"status = '{Status.QUEUED.value}'")
        if row["id"] in known and row["id"] not in planned
    ]
    new_keys, _ = run_requests_for(LandingPlan(pending=plan.pending))
    if new_keys:
        instance.add_dynamic_partitions(MEDIA_PARTITIONS, new_keys)
    order = instance.get_dynamic_partitions(MEDIA_PARTITIONS)
    report = ProcessReport(duplicates=len(plan.duplicates))
    batches: list[tuple[list[str], list[dg.AssetKey] | None]] = []
    by_priority: dict[int, list[PendingFile]] = {}
    for pending in plan.pending:
        by_priority.setdefault(pending.priority, []).append(pending)
    for priority in sorted(by_priority):
        batches.append(([p.asset_id for p in by_priority[priority]], None))
    reanalyze = [a for a, _, _ in plan.reanalyze]
    if recovered or reanalyze:
        batches.append((sorted(set(recovered) | set(reanalyze)), None))
    if stale:
        from dataflux_pipelines.embeddings.stage import stale_assets
        from dataflux_pipelines.models.registry import ModelRegistry
        from dataflux_pipelines.text_stage import stale_text_sources

        registry = ModelRegistry(settings)
        reread = [a for a in stale_text_sources(catalog.db, registry) if a in set(order)]
        stale_ids = [
            a for a in stale_assets(catalog.db, registry) if a in set(order) and a not in set(reread)
        ]
        if reread:
            batches.append((reread, None))  # transcripts / text from another model: every stage reruns
        if stale_ids:
            batches.append((stale_ids, EMBEDDING_STAGES))
    for asset_ids, selection in batches:
        watcher = _Watcher(catalog, asset_ids, progress)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        try:
            tag_sets = _run_tags_for(asset_ids, order)
            results = execute_runs(defs, instance, "process_media", tag_sets, asset_selection=selection)
        finally:
            watcher.stop.set()
            thread.join()
        report.runs += len(results)
        report.files += len(asset_ids)
        counts = watcher.poll()
        if progress:
            progress(len(asset_ids), len(asset_ids), counts)
        for row in catalog.get_assets(asset_ids):
            if row["status"] == Status.FAILED.value:
                report.failed += 1
                report.failures.append(
                    {
                        "id": row["id"],
                        "filename": row["filename"],
                        "reason_code": row["reason_code"],
                        "message": row["reason_message"],
                    }
                )
            elif row["status"] == Status.COMPLETED.value:
                report.completed += 1
    for _, _, request_key in plan.reanalyze:
        clear_reanalysis_request(store, request_key)
    if report.files and "refresh_shared" in {j.name for j in defs.resolve_all_job_defs()}:
        shared = defs.resolve_job_def("refresh_shared")
        result = shared.execute_in_process(
            instance=instance,
            tags={"dataflux/launched_by": "dataflux process"},
            raise_on_error=False,
            run_config=CONSOLE_INFO,
        )
        report.shared_runs += 1
        if not result.success:
            report.failures.append(
                {
                    "id": None,
                    "filename": "refresh_shared",
                    "reason_code": "internal_error",
                    "message": "the shared assets run failed; see the Dagster UI",
                }
            )
    report.seconds = time.perf_counter() - started
    return report
