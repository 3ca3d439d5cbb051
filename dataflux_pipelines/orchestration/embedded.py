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
from dataflux_pipelines.landing import clear_reanalysis_request, plan_runs
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.jobs import EMBEDDING_STAGES
from dataflux_pipelines.orchestration.partitions import (
    MEDIA_PARTITIONS,
    asset_id_of,
    keys_by_asset,
    partition_key,
    partition_tag_sets,
    priority_tags,
)
from dataflux_pipelines.orchestration.recovery import launch_tags, reconcile
from dataflux_pipelines.orchestration.resources import shared_registry
from dataflux_pipelines.records import Status
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
    dead_runs: int = 0  # runs of a killed process, reported failed before planning
    requeued: int = 0  # their files, queued again
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


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
        run_tags.update(launch_tags())
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
    max_files_per_run: int = 1000,
) -> ProcessReport:
    """Materialize what the sensor would request now (and, with `stale`, re-embed stale files)."""
    started = time.perf_counter()
    store = open_object_store(settings)
    catalog = Catalog(settings)
    recovery = reconcile(instance, catalog)
    known = instance.get_dynamic_partitions(MEDIA_PARTITIONS)
    plan = plan_runs(
        store,
        catalog,
        {asset_id_of(k) for k in known},
        settle_seconds=0,
        max_files_per_run=max_files_per_run,
        recover=recovery.recoverable,
    )
    if plan.new_partitions:
        instance.add_dynamic_partitions(
            MEDIA_PARTITIONS, [partition_key(a, plan.filenames.get(a)) for a in plan.new_partitions]
        )
    order = instance.get_dynamic_partitions(MEDIA_PARTITIONS)
    key_of = keys_by_asset(order)
    report = ProcessReport(
        duplicates=len(plan.duplicates),
        dead_runs=len(recovery.dead_runs),
        requeued=len(recovery.requeued),
    )
    for asset_id in recovery.failed:
        row = catalog.get_asset(asset_id) or {}
        report.failures.append(
            {
                "id": asset_id,
                "filename": row.get("filename"),
                "reason_code": row.get("reason_code"),
                "message": row.get("reason_message"),
            }
        )
    report.failed += len(recovery.failed)
    batches: list[tuple[list[str], int, list[dg.AssetKey] | None]] = [
        (list(run.asset_ids), run.priority, None) for run in plan.runs
    ]
    if stale:
        from dataflux_pipelines.embeddings.stage import stale_assets
        from dataflux_pipelines.text_stage import stale_text_sources

        registry = shared_registry(settings)
        reread = [a for a in stale_text_sources(catalog.db, registry) if a in key_of]
        stale_ids = [a for a in stale_assets(catalog.db, registry) if a in key_of and a not in set(reread)]
        if reread:
            batches.append((reread, 5, None))  # transcripts / text from another model: every stage reruns
        if stale_ids:
            batches.append((stale_ids, 5, EMBEDDING_STAGES))
    for asset_ids, priority, selection in batches:
        watcher = _Watcher(catalog, asset_ids, progress)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        try:
            keys = [key_of[a] for a in asset_ids]
            tag_sets = [{**priority_tags(priority), **t} for t in partition_tag_sets(keys, order)]
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
    for request_key in plan.reanalysis_keys:
        clear_reanalysis_request(store, request_key)
    if report.files and "refresh_shared" in {j.name for j in defs.resolve_all_job_defs()}:
        shared = defs.resolve_job_def("refresh_shared")
        result = shared.execute_in_process(
            instance=instance,
            tags=launch_tags(),
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
