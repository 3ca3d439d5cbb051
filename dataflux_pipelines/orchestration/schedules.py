"""DataFlux's Dagster schedules."""

import dagster as dg

from dataflux_pipelines.orchestration.jobs import analytics_refresh_job

analytics_schedule = dg.ScheduleDefinition(
    name="analytics_every_15_minutes",
    job=analytics_refresh_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

SCHEDULES = [analytics_schedule]
