"""Embedded mode: evaluate the landing exactly as the sensor does and run the work in this process.

The runs go to the same Dagster instance as the daemon's, so the UI shows them, their
partitions and their metadata just the same.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import psutil

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import clear_reanalysis_request, plan_runs
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.assets import FIRST_TOUCH_TAG, OP_TOTAL, PROFILE_TAG
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
    # Where the time went: start-up (process start to here), planning, runs, Dagster's own share,
    # the shared refresh, and per media type and phase (summed over the runs' profiles).
    timings: dict[str, float] = field(default_factory=dict)
    profile: dict[str, dict[str, float]] = field(default_factory=dict)

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
    entered = time.time()
    process_started = psutil.Process().create_time()
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
    report.timings["startup_s"] = round(entered - process_started, 3)
    report.timings["planning_s"] = round(time.perf_counter() - started, 3)
    runs_started = time.perf_counter()
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
        _add_profiles(report, instance, results, process_started)
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
    report.timings["runs_s"] = round(time.perf_counter() - runs_started, 3)
    # The media ops' wall time; without it (runs of an older op), the sum of the stages' seconds
    # ("files" is a count; "*_background" ran on another thread beside the rest, model preloading).
    staged = report.profile.get("run", {}).get(OP_TOTAL) or sum(
        v
        for kind in report.profile.values()
        for k, v in kind.items()
        if k != "files" and not k.endswith("_background")
    )
    if report.files:
        # What the runs spent outside DataFlux's own stages: Dagster's events, run and step set-up.
        report.timings["orchestration_s"] = round(max(0.0, report.timings["runs_s"] - staged), 3)
    shared_started = time.perf_counter()
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
    report.timings["shared_s"] = round(time.perf_counter() - shared_started, 3)
    report.seconds = time.perf_counter() - started
    return report


def _add_profiles(
    report: ProcessReport,
    instance: dg.DagsterInstance,
    results: Sequence[dg.ExecuteInProcessResult],
    process_started: float,
) -> None:
    """Fold each run's profile (a run tag written by the media op) into the report."""
    for result in results:
        run = instance.get_run_by_id(result.run_id)
        tags = run.tags if run is not None else {}
        touched = tags.get(FIRST_TOUCH_TAG)
        if touched and "first_file_touched_s" not in report.timings:
            report.timings["first_file_touched_s"] = round(float(touched) - process_started, 3)
        for kind, phases in json.loads(tags.get(PROFILE_TAG) or "{}").items():
            into = report.profile.setdefault(kind, {})
            for phase, value in phases.items():
                into[phase] = round(into.get(phase, 0) + value, 3)
