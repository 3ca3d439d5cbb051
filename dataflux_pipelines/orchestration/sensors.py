"""DataFlux's Dagster sensors: landing → runs, stale embeddings → re-embedding, processing → shared refresh."""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import RunPlan, clear_reanalysis_request, plan_runs
from dataflux_pipelines.orchestration.assets import MAX_PARTITIONS_PER_RUN
from dataflux_pipelines.orchestration.jobs import EMBEDDING_STAGES, process_media_job, refresh_shared_job
from dataflux_pipelines.orchestration.partitions import (
    MEDIA_PARTITIONS,
    keys_by_asset,
    media_files,
    partition_key,
    partition_tag_sets,
    priority_tags,
)
from dataflux_pipelines.orchestration.recovery import reconcile
from dataflux_pipelines.orchestration.resources import ModelsResource, StoresResource


def new_partition_keys(plan: RunPlan) -> list[str]:
    return [partition_key(a, plan.filenames.get(a)) for a in plan.new_partitions]


def run_requests_for(plan: RunPlan, order: list[str]) -> list[dg.RunRequest]:
    """Dagster run requests for a plan; `order` is the partition order once the new keys are added."""
    requests: list[dg.RunRequest] = []
    key_of = keys_by_asset(order)
    for run in plan.runs:
        tags = priority_tags(run.priority)
        if run.reanalysis_key:
            tags["dataflux/reanalysis"] = run.reanalysis_key
        tag_sets = partition_tag_sets([key_of[a] for a in run.asset_ids], order)
        for i, partition_tags in enumerate(tag_sets):
            run_key = run.run_key if len(tag_sets) == 1 else f"{run.run_key}:{i}"
            partition = partition_tags.pop("dagster/partition", None)
            requests.append(
                dg.RunRequest(run_key=run_key, partition_key=partition, tags={**tags, **partition_tags})
            )
    return requests


@dg.sensor(
    job=process_media_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches landing/ in the object store (local folder or S3 prefix) and "
    "re-analysis requests; adds one partition per new file and requests runs.",
)
def landing_sensor(context: dg.SensorEvaluationContext, stores: StoresResource) -> dg.SensorResult:
    recovery = reconcile(context.instance, stores.catalog)
    for asset_id in recovery.requeued:
        context.log.warning(f"{asset_id}: its run died; queued again")
    known = recovery.keys  # every file's key: read at most once per tick, only if the plan needs it
    plan = plan_runs(
        stores.store,
        stores.catalog,
        known,
        settle_seconds=stores.settings.landing_settle_s,
        max_files_per_run=MAX_PARTITIONS_PER_RUN,
        # Only files whose run died: a file never attempted is waiting for the run this sensor requested.
        recover={a: n for a, n in recovery.recoverable.items() if n > 0},
        log=context.log,
    )
    for key, asset_id in plan.duplicates:
        context.log.info(f"{key}: same bytes as asset {asset_id}; removed from landing")
    new_keys = new_partition_keys(plan)
    requests = run_requests_for(plan, [*known.keys, *new_keys]) if plan.runs else []
    for request_key in plan.reanalysis_keys:
        clear_reanalysis_request(stores.store, request_key)
    cursor = json.dumps(
        {"pending": len(plan.new_partitions), "unsettled": plan.unsettled, "requests": len(requests)}
    )
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"no new files in landing ({plan.unsettled} still being written)"),
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[media_files.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )


@dg.sensor(
    job=process_media_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-embeds exactly the files whose stored vectors came from another model than the "
    "configured one (a changed DATAFLUX_CLIP_MODEL, a new revision or new weights), and reprocesses "
    "the files whose transcripts or on-screen text came from another Whisper / OCR model.",
)
def stale_embeddings_sensor(
    context: dg.SensorEvaluationContext, stores: StoresResource, models: ModelsResource
) -> dg.SensorResult:
    from dataflux_pipelines.embeddings.stage import stale_assets

    settings = stores.settings
    registry = models.registry(settings)
    key_of = keys_by_asset(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS))
    db = Catalog(settings, reader=True).db
    stale = [a for a in stale_assets(db, registry) if a in key_of]
    # Transcripts / on-screen text from another Whisper or OCR model: the whole file reruns.
    from dataflux_pipelines.text_stage import stale_text_sources

    reread = [a for a in stale_text_sources(db, registry) if a in key_of]
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
            partition_key=key_of[asset_id],
            asset_selection=EMBEDDING_STAGES,
            tags={"dataflux/reason": "stale-embeddings"},
        )
        for asset_id in stale
    ] + [
        dg.RunRequest(
            run_key=f"reread:{asset_id}:{reread_fingerprint}",
            partition_key=key_of[asset_id],
            tags={"dataflux/reason": "stale-transcripts-or-text"},
        )
        for asset_id in reread
    ]
    return dg.SensorResult(run_requests=requests, cursor=fingerprint)


def _refresh_after(status: dg.DagsterRunStatus, name: str, description: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=status,
        monitored_jobs=[process_media_job],
        request_job=refresh_shared_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=description,
    )
    def refresh(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        return dg.RunRequest(run_key=f"refresh-after-{context.dagster_run.run_id}")

    return refresh


refresh_after_processing = _refresh_after(
    dg.DagsterRunStatus.SUCCESS,
    "refresh_after_processing",
    "After files are processed, refresh the shared assets once (runs coalesce per tick).",
)
refresh_after_partial_processing = _refresh_after(
    dg.DagsterRunStatus.FAILURE,
    "refresh_after_partial_processing",
    "A run where some files failed still processed the others: refresh for those.",
)

SENSORS = [
    landing_sensor,
    stale_embeddings_sensor,
    refresh_after_processing,
    refresh_after_partial_processing,
]
