"""DataFlux's Dagster schedules."""

import dagster as dg

from dataflux_pipelines.orchestration.jobs import analytics_refresh_job, shared_lag_job

analytics_schedule = dg.ScheduleDefinition(
    name="analytics_every_15_minutes",
    job=analytics_refresh_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# The shared assets never lag the files silently: a failing check names the files they miss.
shared_lag_schedule = dg.ScheduleDefinition(
    name="shared_lag_every_15_minutes",
    job=shared_lag_job,
    cron_schedule="7-59/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

SCHEDULES = [analytics_schedule, shared_lag_schedule]
