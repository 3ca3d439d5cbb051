"""DataFlux's Dagster definitions: this module only assembles."""

import dagster as dg

from dataflux_pipelines.ingest.assets import media_pipeline, process_media_job
from dataflux_pipelines.ingest.sensors import landing_sensor
from dataflux_pipelines.resources import DataFluxResource

defs = dg.Definitions(
    assets=[media_pipeline],
    jobs=[process_media_job],
    sensors=[landing_sensor],
    resources={"dataflux": DataFluxResource()},
)
