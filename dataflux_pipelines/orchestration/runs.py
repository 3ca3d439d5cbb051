"""Dagster's run history as plain rows: status, timing, files per run and why a run failed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS, RANGE_END, RANGE_START

MAX_RUNS = 10_000


def _ts(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value is not None else None


def _failure_reason(instance: dg.DagsterInstance, run_id: str) -> str | None:
    for record in instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    ).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            return (
                f"{error.cls_name}: {error.message.strip().splitlines()[0] if error.message.strip() else ''}"
            )
        if event.message:
            return event.message.splitlines()[0]
    return None


def dagster_runs(instance: dg.DagsterInstance, limit: int = MAX_RUNS) -> list[dict[str, Any]]:
    """Runs from Dagster's run storage, newest first, as rows for the analytics facts."""
    out = []
    # A ranged run (many files in one run) names only its first and last partition.
    order = {key: i for i, key in enumerate(instance.get_dynamic_partitions(MEDIA_PARTITIONS))}
    for record in instance.get_run_records(limit=limit):
        run = record.dagster_run
        tags = run.tags or {}
        partitions: int | None = 1 if "dagster/partition" in tags else None
        first, last = tags.get(RANGE_START), tags.get(RANGE_END)
        if first in order and last in order:
            partitions = order[last] - order[first] + 1
        start, end = record.start_time, record.end_time
        status = run.status.value
        out.append(
            {
                "run_id": run.run_id,
                "job_name": run.job_name,
                "status": status,
                "partitions": partitions,
                "start_time": _ts(start),
                "end_time": _ts(end),
                "duration_s": (end - start) if start is not None and end is not None else None,
                "failure_reason": _failure_reason(instance, run.run_id) if status == "FAILURE" else None,
            }
        )
    return out
