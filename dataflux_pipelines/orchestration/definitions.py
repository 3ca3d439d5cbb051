"""DataFlux's Dagster definitions: this module only assembles."""

import dagster as dg

from dataflux_pipelines.orchestration.assets import PER_FILE_ASSETS, SHARED_ASSETS
from dataflux_pipelines.orchestration.checks import LAG_CHECKS
from dataflux_pipelines.orchestration.jobs import JOBS
from dataflux_pipelines.orchestration.metrics import serve_code_location_metrics
from dataflux_pipelines.orchestration.resources import ModelsResource, StoresResource, relax_sqlite_sync
from dataflux_pipelines.orchestration.schedules import SCHEDULES
from dataflux_pipelines.orchestration.sensors import SENSORS
from dataflux_pipelines.settings import Settings

relax_sqlite_sync()  # the code server and daemon processes commit Dagster's events too

defs = dg.Definitions(
    assets=[*PER_FILE_ASSETS, *SHARED_ASSETS],
    asset_checks=LAG_CHECKS,
    jobs=JOBS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources={"stores": StoresResource(), "models": ModelsResource()},
)

# The code-location server (not its run workers) exports Prometheus metrics when a port is set.
serve_code_location_metrics(Settings.from_env().dagster_metrics_port)
