"""Recovery of files whose run died: dead runs are marked failed, their files queued again or failed.

A run dies when its process is killed (SIGKILL, a reboot, a lost worker): Dagster then keeps it
STARTED and the catalog keeps its files `processing`, forever. `reconcile` runs before every plan
(the landing sensor's tick and `dataflux process`):
- a run launched in-process by `dataflux process` on this host whose process is gone is reported
  failed to Dagster (daemon-launched runs are watched by Dagster's run monitoring, in dagster.yaml);
- a file still `processing` that no live run covers goes back to `queued` with one more attempt, so
  the planner's recovery runs pick it up; after `max_run_attempts` deaths (DATAFLUX_MAX_RUN_ATTEMPTS)
  it ends `failed` (`run_died`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.errors import Reason
from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, RANGE_END, RANGE_START, asset_id_of
from dataflux_pipelines.records import Status

MAX_ATTEMPTS = 3  # the default of DATAFLUX_MAX_RUN_ATTEMPTS
PID_TAG = "dataflux/pid"
HOST_TAG = "dataflux/host"
LAUNCHED_BY_TAG = "dataflux/launched_by"
IN_PROCESS = "dataflux process"
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class PartitionKeys:
    """The media partition keys (one per file), read from the instance once, on first use.

    Every file has one, so the list grows with the library (10,000 keys: ~15 ms to read and ~5 ms to
    map to asset ids); a tick with nothing queued, running or landed never needs them."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._keys: list[str] | None = None
        self._ids: set[str] | None = None

    @property
    def keys(self) -> list[str]:
        """Every key, in the instance's order (partition ranges are spans of it)."""
        if self._keys is None:
            self._keys = list(self._instance.get_dynamic_partitions(MEDIA_PARTITIONS))
        return self._keys

    def __contains__(self, asset_id: object) -> bool:
        """Whether this asset id has a partition."""
        if self._ids is None:
            self._ids = {asset_id_of(k) for k in self.keys}
        return asset_id in self._ids


@dataclass
class RecoveryReport:
    keys: PartitionKeys
    dead_runs: list[str] = field(default_factory=list)  # run ids reported failed
    requeued: list[str] = field(default_factory=list)  # asset ids queued again
    failed: list[str] = field(default_factory=list)  # asset ids that died max_run_attempts times
    recoverable: dict[str, int] = field(default_factory=dict)  # queued, partitioned, no live run: attempts


def launch_tags() -> dict[str, str]:
    """Tags of a run `dataflux process` executes here, so a later process can tell whether it died."""
    return {LAUNCHED_BY_TAG: IN_PROCESS, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_is_dead(run: dg.DagsterRun) -> bool:
    tags = run.tags or {}
    if tags.get(LAUNCHED_BY_TAG) != IN_PROCESS or tags.get(HOST_TAG) != socket.gethostname():
        return False  # another host's process, or a daemon run (Dagster's run monitoring owns those)
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return False
    return pid != os.getpid() and not _alive(pid)


def _covered(run: dg.DagsterRun, order: dict[str, int], keys: Sequence[str]) -> set[str]:
    tags = run.tags or {}
    """The asset ids of the partitions a run covers."""
    if "dagster/partition" in tags:
        return {asset_id_of(tags["dagster/partition"])}
    first, last = tags.get(RANGE_START), tags.get(RANGE_END)
    if first in order and last in order:
        return {asset_id_of(k) for k in keys[order[first] : order[last] + 1]}
    return set()


def _inspect(
    instance: dg.DagsterInstance, catalog: Catalog
) -> tuple[list[dg.DagsterRun], set[str], PartitionKeys]:
    """The dead in-process runs, the partitions that live (active, not dead) runs cover, and the keys
    (read here only when a live run's partition range has to be resolved)."""
    active = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE))]
    dead = [run for run in active if _run_is_dead(run)]
    dead_ids = {run.run_id for run in dead}
    keys = PartitionKeys(instance)
    covered: set[str] = set()
    live = [run for run in active if run.run_id not in dead_ids]
    if live:
        order = {key: i for i, key in enumerate(keys.keys)}
        for run in live:
            covered |= _covered(run, order, keys.keys)
    return dead, covered, keys


def reconcile(instance: dg.DagsterInstance, catalog: Catalog) -> RecoveryReport:
    """Mark dead in-process runs failed and give their files back to the planner (see module doc)."""
    dead, covered, keys = _inspect(instance, catalog)
    report = RecoveryReport(keys=keys)
    for run in dead:
        instance.report_run_failed(run, "the process running it is gone (killed or rebooted)")
        report.dead_runs.append(run.run_id)
    updates = {}
    for row in catalog.find_assets(f"status = '{Status.PROCESSING.value}'"):
        if row["id"] in covered:
            continue
        attempts = int(row.get("attempts") or 0) + 1
        if attempts >= catalog.settings.max_run_attempts:
            updates[row["id"]] = {
                "status": Status.FAILED.value,
                "attempts": attempts,
                "reason_code": Reason.RUN_DIED.value,
                "reason_message": f"the run processing this file died {attempts} times; "
                "re-analyse it to try again",
            }
            report.failed.append(row["id"])
        else:
            updates[row["id"]] = {"status": Status.QUEUED.value, "attempts": attempts}
            report.requeued.append(row["id"])
    catalog.update_assets(updates)
    # Queued files with a partition but no live run: their run died, or never started (a stopped daemon).
    for row in catalog.find_assets(f"status = '{Status.QUEUED.value}'"):
        if row["id"] in keys and row["id"] not in covered:
            report.recoverable[row["id"]] = int(row.get("attempts") or 0)
    return report


def orphaned(instance: dg.DagsterInstance, catalog: Catalog) -> dict[str, list[str]]:
    """What `reconcile` would fix, without fixing it (for `doctor`)."""
    dead, covered, _ = _inspect(instance, catalog)
    stuck = [
        row["id"]
        for row in catalog.find_assets(f"status = '{Status.PROCESSING.value}'")
        if row["id"] not in covered
    ]
    return {"dead_runs": [run.run_id for run in dead], "stuck_files": stuck}
