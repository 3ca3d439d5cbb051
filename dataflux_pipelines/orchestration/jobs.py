"""DataFlux's Dagster jobs: per-file processing, the shared refresh, and analytics on their own."""

import dagster as dg

from dataflux_pipelines.orchestration.assets import SHARED_ASSETS, analytics_facts
from dataflux_pipelines.pipeline import STAGES

process_media_job = dg.define_asset_job(
    "process_media",
    selection=dg.AssetSelection.assets(*STAGES),
    description="Process media files: one run may carry many partitions.",
)

refresh_shared_job = dg.define_asset_job(
    "refresh_shared",
    selection=dg.AssetSelection.assets(*SHARED_ASSETS),
    description="Indexes, knowledge graph, collections and analytics over everything processed so far.",
)

analytics_refresh_job = dg.define_asset_job("refresh_analytics", selection=[analytics_facts])

# Re-embedding a file whose models changed runs only these stages of its partition.
EMBEDDING_STAGES = [dg.AssetKey("segment_embeddings"), dg.AssetKey("graph_contributions")]

JOBS = [process_media_job, refresh_shared_job, analytics_refresh_job]
