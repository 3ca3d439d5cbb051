"""The landing sensor: new files become partitions and runs; a repeated tick never launches twice."""

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.ingest.assets import MAX_PARTITIONS_PER_RUN, process_media_job
from dataflux_pipelines.ingest.landing import (
    LandingPlan,
    PendingFile,
    clear_obsolete_requests,
    clear_reanalysis_request,
    drop_duplicates,
    plan_landing,
)
from dataflux_pipelines.ingest.partitions import MEDIA_PARTITIONS, RANGE_END, RANGE_START, media_files
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.resources import DataFluxResource
from dataflux_pipelines.settings import Settings


def _chunks(items: Sequence[PendingFile], size: int) -> list[list[PendingFile]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def run_requests_for(plan: LandingPlan) -> tuple[list[str], list[dg.RunRequest]]:
    """New partition keys (in the order to add them) and the runs that cover them.

    Files of one priority are added together, so each group is a contiguous range of the
    dynamic partitions and one run carries up to MAX_PARTITIONS_PER_RUN files.
    """
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    by_priority: dict[int, list[PendingFile]] = {}
    for pending in plan.pending:
        by_priority.setdefault(pending.priority, []).append(pending)
    for priority in sorted(by_priority):
        for group in _chunks(by_priority[priority], MAX_PARTITIONS_PER_RUN):
            keys = [p.asset_id for p in group]
            new_keys.extend(keys)
            run_key = hashlib.sha256("\n".join(p.run_key for p in group).encode()).hexdigest()[:32]
            # Dagster runs higher numbers first; DataFlux priority 1 is the most urgent.
            tags = {"dagster/priority": str(10 - priority), "dataflux/priority": str(priority)}
            if len(keys) == 1:
                requests.append(dg.RunRequest(run_key=run_key, partition_key=keys[0], tags=tags))
            else:
                tags.update({RANGE_START: keys[0], RANGE_END: keys[-1]})
                requests.append(dg.RunRequest(run_key=run_key, tags=tags))
    for asset_id, priority, request_key in plan.reanalyze:
        tags = {"dagster/priority": str(10 - priority), "dataflux/reanalysis": request_key}
        requests.append(dg.RunRequest(run_key=request_key, partition_key=asset_id, tags=tags))
    return new_keys, requests


@dg.sensor(
    job=process_media_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches landing/ in the object store (local folder or S3 prefix) and "
    "re-analysis requests; adds one partition per new file and requests runs.",
)
def landing_sensor(context: dg.SensorEvaluationContext, dataflux: DataFluxResource) -> dg.SensorResult:
    settings = dataflux.settings()
    store = open_object_store(settings)
    catalog = Catalog(settings)
    known = set(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS))
    plan = plan_landing(store, catalog, known, log=context.log)
    drop_duplicates(store, plan)
    clear_obsolete_requests(store, plan)
    for key, asset_id in plan.duplicates:
        context.log.info(f"{key}: same bytes as asset {asset_id}; removed from landing")
    new_keys, requests = run_requests_for(plan)
    for _, _, request_key in plan.reanalyze:
        clear_reanalysis_request(store, request_key)
    cursor = json.dumps(
        {"pending": len(plan.pending), "unsettled": len(plan.skipped_unsettled), "requests": len(requests)}
    )
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"no new files in landing ({len(plan.skipped_unsettled)} still being written)"
            ),
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[media_files.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )


@functools.lru_cache(maxsize=1)
def _registry(settings: Settings) -> Any:
    """One registry per code-server process: its models load once, not on every tick."""
    from dataflux_pipelines.models.registry import ModelRegistry

    return ModelRegistry(settings)


EMBEDDING_STAGES = [dg.AssetKey("segment_embeddings"), dg.AssetKey("graph_contributions")]


@dg.sensor(
    job=process_media_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-embeds exactly the files whose stored vectors came from another model than the "
    "configured one (a changed DATAFLUX_CLIP_MODEL, a new revision or new weights).",
)
def stale_embeddings_sensor(
    context: dg.SensorEvaluationContext, dataflux: DataFluxResource
) -> dg.SensorResult:
    from dataflux_pipelines.embeddings.stage import stale_assets

    settings = dataflux.settings()
    registry = _registry(settings)
    known = set(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS))
    db = Catalog(settings, reader=True).db
    stale = [a for a in stale_assets(db, registry) if a in known]
    # Transcripts / on-screen text from another Whisper or OCR model: the whole file reruns.
    from dataflux_pipelines.text_stage import stale_text_sources

    reread = [a for a in stale_text_sources(db, registry) if a in known]
    stale = [a for a in stale if a not in set(reread)]
    if not stale and not reread:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("every file's embeddings match the configured models")
        )
    fingerprint = hashlib.sha256(
        json.dumps(registry.model_versions("video"), sort_keys=True).encode()
    ).hexdigest()[:16]
    reread_fingerprint = hashlib.sha256(
        json.dumps(registry.text_source_versions("video"), sort_keys=True).encode()
    ).hexdigest()[:16]
    requests = [
        dg.RunRequest(
            run_key=f"stale:{asset_id}:{fingerprint}",
            partition_key=asset_id,
            asset_selection=EMBEDDING_STAGES,
            tags={"dataflux/reason": "stale-embeddings"},
        )
        for asset_id in stale
    ] + [
        dg.RunRequest(
            run_key=f"reread:{asset_id}:{reread_fingerprint}",
            partition_key=asset_id,
            tags={"dataflux/reason": "stale-transcripts-or-text"},
        )
        for asset_id in reread
    ]
    return dg.SensorResult(run_requests=requests, cursor=fingerprint)
