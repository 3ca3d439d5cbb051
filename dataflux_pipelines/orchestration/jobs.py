"""DataFlux's Dagster jobs: per-file processing, the shared refresh, and analytics on their own."""

import dagster as dg

from dataflux_pipelines.orchestration.assets import SHARED_ASSETS, analytics_facts
from dataflux_pipelines.orchestration.checks import LAG_CHECKS
from dataflux_pipelines.pipeline import STAGES

# The per-file checks are evaluated inside the op, one evaluation per partition of the run
# (dataflux_pipelines/orchestration/checks.py), not as check outputs of the op: a run carries a range
# of partitions, and a check output would be one result for all of them.
process_media_job = dg.define_asset_job(
    "process_media",
    selection=dg.AssetSelection.assets(*STAGES).without_checks(),
    description="Process media files: one run may carry many partitions.",
)

refresh_shared_job = dg.define_asset_job(
    "refresh_shared",
    selection=dg.AssetSelection.assets(*SHARED_ASSETS),
    description="Indexes, knowledge graph, collections and analytics over everything processed so far.",
)

analytics_refresh_job = dg.define_asset_job("refresh_analytics", selection=[analytics_facts])

# Only the lag checks: does any shared asset miss files processed since its last refresh?
shared_lag_job = dg.define_asset_job(
    "check_shared_lag",
    selection=dg.AssetSelection.checks(*LAG_CHECKS),
    description="Asset checks that name files processed since a shared asset's last refresh.",
)

# Re-embedding a file whose models changed runs only these stages of its partition.
EMBEDDING_STAGES = [dg.AssetKey("segment_embeddings"), dg.AssetKey("graph_contributions")]

JOBS = [process_media_job, refresh_shared_job, analytics_refresh_job, shared_lag_job]
