"""The per-file assets: one op runs every selected stage over every partition of the run.

A run may carry many partitions (a range): models load once and inference batches across files.
A file that fails gets no materialization for the failed stage and later ones, and the step
fails at the end naming it, so Dagster marks exactly that partition failed while the others
stay materialized.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from dataflux_pipelines.ingest.partitions import media_files
from dataflux_pipelines.pipeline import STAGES, MediaPipeline, Outcome
from dataflux_pipelines.resources import DataFluxResource

MAX_PARTITIONS_PER_RUN = 100

_DESCRIPTIONS = {
    "media_file": "The file itself: content hash, type sniffed from the bytes, technical probe, "
    "canonical copy under objects/{asset_id}/ and its catalog row.",
    "segments": "Shots, audio passages, images or document chunks with their features, keyframes "
    "and thumbnails (LanceDB `segments`).",
    "segment_embeddings": "Vision and text vectors for every segment, with model name and version "
    "(LanceDB vector tables), plus concepts and the full-text column.",
    "graph_contributions": "This file's edges for the knowledge graph (temporal order, concepts, "
    "similar and duplicate candidates), folded in by `media_graph`.",
}

SPECS = [
    dg.AssetSpec(
        stage,
        deps=[STAGES[i - 1]] if i else [],
        partitions_def=media_files,
        skippable=True,
        group_name="media",
        description=_DESCRIPTIONS[stage],
        kinds={"lancedb"} if stage != "graph_contributions" else {"parquet"},
    )
    for i, stage in enumerate(STAGES)
]


def _metadata(outcome: Outcome) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in outcome.metadata.items():
        if isinstance(value, bool | int | float | str) or value is None:
            meta[key] = value
        else:
            meta[key] = dg.MetadataValue.json(value)
    return meta


@dg.multi_asset(
    specs=SPECS,
    partitions_def=media_files,
    backfill_policy=dg.BackfillPolicy.multi_run(MAX_PARTITIONS_PER_RUN),
    can_subset=True,
    name="media_pipeline",
)
def media_pipeline(
    context: dg.AssetExecutionContext, dataflux: DataFluxResource
) -> Iterator[dg.AssetMaterialization]:
    asset_ids = list(context.partition_keys)
    selected = {key.path[-1] for key in context.selected_asset_keys}
    settings = dataflux.settings()
    failures: dict[str, tuple[str, Outcome]] = {}
    context.log.info(f"processing {len(asset_ids)} file(s) through {sorted(selected)}")
    with MediaPipeline(settings, log=context.log.info) as pipeline:
        pipeline.mark_processing(asset_ids)
        alive = asset_ids
        for stage in STAGES:
            if stage not in selected or not alive:
                continue
            outcomes = getattr(pipeline, stage)(alive)
            for asset_id in alive:
                outcome = outcomes[asset_id]
                if outcome.ok:
                    yield dg.AssetMaterialization(
                        asset_key=stage, partition=asset_id, metadata=_metadata(outcome)
                    )
                else:
                    failures[asset_id] = (stage, outcome)
                    assert outcome.error is not None
                    context.log.warning(f"{asset_id} failed in {stage}: {outcome.error}")
            alive = [a for a in alive if outcomes[a].ok]
            context.log.info(f"{stage}: {len(alive)} ok, {len(failures)} failed so far")
        pipeline.mark_done({**{a: Outcome(a) for a in alive}, **{a: o for a, (_, o) in failures.items()}})
    if failures:
        lines = [
            f"{asset_id} ({stage}): {outcome.error}"
            for asset_id, (stage, outcome) in sorted(failures.items())
        ]
        raise dg.Failure(
            description=f"{len(failures)} of {len(asset_ids)} file(s) failed:\n" + "\n".join(lines[:50]),
            metadata={
                "failed_partitions": dg.MetadataValue.json(
                    {
                        a: {"stage": s, "reason_code": o.error.reason.value, "message": o.error.message}
                        for a, (s, o) in failures.items()
                        if o.error is not None
                    }
                ),
                "succeeded": len(asset_ids) - len(failures),
            },
            allow_retries=False,
        )


process_media_job = dg.define_asset_job(
    "process_media",
    selection=dg.AssetSelection.assets(*STAGES),
    description="Process media files: one run may carry many partitions.",
)
