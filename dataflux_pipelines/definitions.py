"""DataFlux's Dagster definitions: this module only assembles."""

import dagster as dg

from dataflux_pipelines.analytics.assets import ANALYTICS_ASSETS, ANALYTICS_JOBS, ANALYTICS_SCHEDULES
from dataflux_pipelines.embeddings.assets import INDEX_ASSETS
from dataflux_pipelines.graph.assets import GRAPH_ASSETS
from dataflux_pipelines.ingest.assets import media_pipeline, process_media_job
from dataflux_pipelines.ingest.sensors import landing_sensor, stale_embeddings_sensor
from dataflux_pipelines.resources import DataFluxResource

SHARED_ASSETS = [*INDEX_ASSETS, *GRAPH_ASSETS, *ANALYTICS_ASSETS]

refresh_shared_job = dg.define_asset_job(
    "refresh_shared",
    selection=dg.AssetSelection.assets(*SHARED_ASSETS),
    description="Indexes, knowledge graph, collections and analytics over everything processed so far.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[process_media_job],
    request_job=refresh_shared_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After files are processed, refresh the shared assets once (runs coalesce per tick).",
)
def refresh_after_processing(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"refresh-after-{context.dagster_run.run_id}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE,
    monitored_jobs=[process_media_job],
    request_job=refresh_shared_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="A run where some files failed still processed the others: refresh for those.",
)
def refresh_after_partial_processing(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"refresh-after-{context.dagster_run.run_id}")


defs = dg.Definitions(
    assets=[media_pipeline, *SHARED_ASSETS],
    jobs=[process_media_job, refresh_shared_job, *ANALYTICS_JOBS],
    sensors=[
        landing_sensor,
        stale_embeddings_sensor,
        refresh_after_processing,
        refresh_after_partial_processing,
    ],
    schedules=[*ANALYTICS_SCHEDULES],
    resources={"dataflux": DataFluxResource()},
)
