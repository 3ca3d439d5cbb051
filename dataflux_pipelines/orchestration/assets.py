"""DataFlux's Dagster assets: the per-file stages (one op over every partition of a run) and the
shared assets over all files (indexes, collections, the knowledge graph, analytics).

A run may carry many partitions (a range): models load once and inference batches across files.
A file that fails gets no materialization for the failed stage and later ones, and the step
fails at the end naming it, so Dagster marks exactly that partition failed while the others
stay materialized.
"""

import functools
import json
import time
from collections.abc import Generator, Iterator
from typing import Any

import dagster as dg

from dataflux_pipelines.analytics.facts import collect_facts, publish_facts
from dataflux_pipelines.analytics.views import open_views, rollup_rows
from dataflux_pipelines.auto_collections import refresh_auto_collections
from dataflux_pipelines.embeddings.indexes import maintain_indexes
from dataflux_pipelines.orchestration.checks import (
    FILE_CHECK_SPECS,
    FILE_CHECKS,
    SHARED_CHECK_SPECS,
    facts_complete_result,
    file_check_evaluations,
    graph_matches_catalog_result,
    index_recall_result,
    thumbnail_preview,
)
from dataflux_pipelines.orchestration.partitions import asset_id_of, media_files
from dataflux_pipelines.orchestration.resources import ModelsResource, StoresResource
from dataflux_pipelines.orchestration.runs import dagster_runs
from dataflux_pipelines.pipeline import STAGES, MediaPipeline, Outcome, cost_batches, kill_at_boundary

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


PROFILE_TAG = "dataflux/profile"
OP_TOTAL = "op_total"  # the profile's "run" entry for the media op's wall time, stages included
FIRST_TOUCH_TAG = "dataflux/first_file_touched_at"


def _stage(
    context: dg.AssetExecutionContext,
    stores: StoresResource,
    pipeline: MediaPipeline,
    stage: str,
    asset_ids: list[str],
    key_of: dict[str, str],
    failures: dict[str, tuple[str, Outcome]],
) -> Generator[dg.AssetMaterialization, None, list[str]]:
    """One stage over these files: a materialization per success, failures recorded; returns the
    files still going."""
    outcomes = getattr(pipeline, stage)(asset_ids)
    previews = _previews(stores, asset_ids) if stage == "segments" else {}
    for asset_id in asset_ids:
        outcome = outcomes[asset_id]
        if outcome.ok:
            meta = _metadata(outcome)
            if previews.get(asset_id) is not None:
                meta["preview"] = previews[asset_id]
            yield dg.AssetMaterialization(asset_key=stage, partition=key_of[asset_id], metadata=meta)
        else:
            failures[asset_id] = (stage, outcome)
            assert outcome.error is not None
            context.log.warning(f"{asset_id} failed in {stage}: {outcome.error}")
    alive = [a for a in asset_ids if outcomes[a].ok]
    context.log.info(f"{stage}: {len(alive)} ok, {len(failures)} failed so far")
    kill_at_boundary(pipeline.settings, stage)
    return alive


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
    check_specs=FILE_CHECK_SPECS,
    partitions_def=media_files,
    backfill_policy=dg.BackfillPolicy.multi_run(MAX_PARTITIONS_PER_RUN),
    can_subset=True,
    name="media_pipeline",
)
def media_pipeline(
    context: dg.AssetExecutionContext, stores: StoresResource, models: ModelsResource
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    key_of = {asset_id_of(k): k for k in context.partition_keys}
    asset_ids = list(key_of)
    selected = {key.path[-1] for key in context.selected_asset_keys}
    settings = stores.settings
    failures: dict[str, tuple[str, Outcome]] = {}
    finished: dict[str, Outcome] = {}
    context.log.info(f"processing {len(asset_ids)} file(s) through {sorted(selected)}")
    with MediaPipeline(
        settings,
        log=context.log.info,
        registry_factory=functools.partial(models.registry, settings),  # built on the preload thread
        catalog=stores.catalog,
        store=stores.store,
    ) as pipeline:
        first_touch = time.time()
        op_started = time.perf_counter()
        pipeline.mark_processing(asset_ids)
        alive = asset_ids
        if "media_file" in selected:
            alive = yield from _stage(context, stores, pipeline, "media_file", alive, key_of, failures)
        # Cheap files first, in one batch; each heavy one after them, alone: a huge file costs the
        # others nothing, and each batch is finished (committed, marked done) before the next starts.
        rows = {r["id"]: r for r in pipeline.catalog.get_assets(alive)} if alive else {}
        batches = cost_batches([rows.get(a, {"id": a}) for a in alive])
        context.log.info(f"{len(alive)} file(s) in {len(batches)} batch(es) by estimated cost")
        for batch in batches:
            for stage in STAGES[1:]:
                if stage not in selected or not batch:
                    continue
                for asset_id, outcome in pipeline.over_budget(batch).items():
                    failures[asset_id] = (stage, outcome)
                batch = [a for a in batch if a not in failures]
                batch = yield from _stage(context, stores, pipeline, stage, batch, key_of, failures)
            done = {a: Outcome(a) for a in batch}
            done.update({a: o for a, (_, o) in failures.items() if a not in finished})
            pipeline.mark_done(done)
            finished.update(done)
        pipeline.mark_done({a: o for a, (_, o) in failures.items() if a not in finished})
        # What each file became, checked against the stores it was written to (one result per partition).
        checks = {name for name, (stage, _) in FILE_CHECKS.items() if stage in selected}
        completed = [a for a in asset_ids if a in finished and a not in failures]
        yield from file_check_evaluations(
            stores.catalog, stores.store, pipeline.registry, completed, key_of, checks, context.instance
        )
        for asset_id in asset_ids:
            pipeline.profile.count(pipeline.media_types.get(asset_id))
        # The op's own wall time: stages overlap (OCR beside decoding), so their sum is no measure of it.
        pipeline.profile.add("run", OP_TOTAL, time.perf_counter() - op_started)
        profile = pipeline.profile.to_dict()
    context.log.info(
        "where the time went (s): "
        + "; ".join(
            f"{kind} " + ", ".join(f"{phase} {value}" for phase, value in phases.items())
            for kind, phases in profile.items()
        )
    )
    # Run tags show on the run's page in the UI; `dataflux process` reads them back for its report.
    context.instance.add_run_tags(
        context.run_id,
        {PROFILE_TAG: json.dumps(profile, sort_keys=True), FIRST_TOUCH_TAG: f"{first_touch:.3f}"},
    )
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
                        key_of[a]: {
                            "stage": s,
                            "reason_code": o.error.reason.value,
                            "message": o.error.message,
                        }
                        for a, (s, o) in failures.items()
                        if o.error is not None
                    }
                ),
                "succeeded": len(asset_ids) - len(failures),
            },
            allow_retries=False,
        )


def _previews(stores: StoresResource, asset_ids: list[str]) -> dict[str, dg.MetadataValue | None]:
    return {row["id"]: thumbnail_preview(stores.store, row) for row in stores.catalog.get_assets(asset_ids)}


# --- shared assets over all files ------------------------------------------------------


def _index_table(rows: list[dict]) -> str:
    lines = [
        "| table | column | rows | indexed | unindexed | index | recall@10 | params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in rows:
        params = ", ".join(f"{k}={v[k]}" for k in ("nprobes", "ef", "refine_factor") if v.get(k) is not None)
        lines.append(
            f"| {v.get('table')} | {v.get('column')} | {v.get('rows')} | {v.get('indexed_rows')} | "
            f"{v.get('unindexed_rows')} | {v.get('index_type')} | {v.get('recall_at_k')} | {params} |"
        )
    return "\n".join(lines)


@dg.asset(
    deps=[dg.AssetKey("segment_embeddings")],
    pool="lance_indexer",
    group_name="indexes",
    kinds={"lancedb"},
    check_specs=SHARED_CHECK_SPECS["vector_indexes"],
    description="Builds and refreshes the full-text, scalar and ANN indexes of the LanceDB tables, "
    "tunes search parameters for recall@10 >= 0.95 against exact search, and compacts old versions "
    "with a retention that concurrent readers survive.",
)
def vector_indexes(context: dg.AssetExecutionContext, stores: StoresResource) -> dg.MaterializeResult:
    report = maintain_indexes(stores.catalog.db)
    vectors = report["vectors"]
    context.log.info(f"index maintenance: {len(vectors)} vector column(s), {report['seconds']} s")
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.json(report["tables"]),
            "vector_columns": dg.MetadataValue.md(_index_table(vectors)) if vectors else "none yet",
            "rows": sum(int(v.get("rows") or 0) for v in vectors),
            "indexed_rows": sum(int(v.get("indexed_rows") or 0) for v in vectors),
            "unindexed_rows": sum(int(v.get("unindexed_rows") or 0) for v in vectors),
            "min_recall_at_10": report["min_recall_at_k"],
            "seconds": report["seconds"],
        },
        check_results=[index_recall_result(report)],
    )


@dg.asset(
    deps=[dg.AssetKey("segment_embeddings")],
    group_name="shared",
    kinds={"lancedb"},
    description="Clusters of asset embeddings (k chosen by silhouette), named by their top concepts, "
    "written to the `collections` table with auto_generated=true; ids survive small membership changes.",
)
def auto_collections(context: dg.AssetExecutionContext, stores: StoresResource) -> dg.MaterializeResult:
    report = refresh_auto_collections(stores.catalog)
    table = ["| collection | assets |", "|---|---|"] + [
        f"| {c['name']} | {c['size']} |" for c in report["collections"]
    ]
    if report.get("reason"):
        context.log.info(f"no auto-generated collections: {report['reason']}")
    return dg.MaterializeResult(
        metadata={
            "assets": report["assets"],
            "collections": len(report["collections"]),
            "kept_ids": report["kept_ids"],
            "removed": report["removed"],
            "k": report.get("k"),
            "silhouette": report.get("silhouette"),
            # Past cluster_assets' sample size, k and the centres come from this many files.
            "sampled": report.get("sampled"),
            "reason": report.get("reason"),
            "table": dg.MetadataValue.md("\n".join(table)),
        }
    )


@dg.asset(
    deps=[dg.AssetKey("segment_embeddings"), auto_collections],
    pool="kuzu_writer",
    group_name="shared",
    kinds={"kuzu"},
    check_specs=SHARED_CHECK_SPECS["media_graph"],
    description="The knowledge graph (assets, segments, collections, concepts; temporal, concept, "
    "similarity and near-duplicate relations) built from the catalog and per-file contributions: "
    "a copy of the live Kuzu snapshot with the changed assets applied (rebuilt whole when most "
    "changed), published as a new snapshot with an atomic pointer swap.",
)
def media_graph(context: dg.AssetExecutionContext, stores: StoresResource) -> dg.MaterializeResult:
    # Imported here: polars (0.1-0.2 s) is only needed by the graph build, not by a process that
    # finds nothing to do or a code server answering the sensor.
    from dataflux_pipelines.graph.build import publish_graph, top_concepts_markdown

    report = publish_graph(stores.settings, stores.catalog)
    build = report.build
    how = (
        f"{report.assets_applied} changed asset(s) applied to a copy of the live one"
        if report.mode == "incremental"
        else f"rebuilt whole: {report.full_reason}"
    )
    context.log.info(f"published graph snapshot v{report.snapshot.version} in {report.seconds:.2f} s ({how})")
    return dg.MaterializeResult(
        metadata={
            "snapshot_version": report.snapshot.version,
            "build_mode": report.mode,
            "assets_applied": report.assets_applied,
            "full_build_reason": report.full_reason or "none",
            "snapshot_path": dg.MetadataValue.path(str(report.snapshot.path)),
            "snapshot_bytes": report.snapshot.path.stat().st_size,
            "nodes": sum(build.nodes.values()),
            "relations": sum(build.relations.values()),
            "node_counts": dg.MetadataValue.json(build.nodes),
            "relation_counts": dg.MetadataValue.json(build.relations),
            "duplicate_groups": len(build.duplicate_groups),
            "deleted_assets_dropped": len(report.tombstones_applied),
            "stale_edges_dropped": build.dropped_edges,
            "build_seconds": round(report.seconds, 3),
            "top_concepts": dg.MetadataValue.md(top_concepts_markdown(build.top_concepts)),
        },
        check_results=[
            graph_matches_catalog_result(report.snapshot.path, stores.catalog, report.tombstones_applied)
        ],
    )


@dg.asset(
    pool="duckdb_writer",
    group_name="shared",
    kinds={"duckdb", "parquet"},
    check_specs=SHARED_CHECK_SPECS["analytics_facts"],
    description="Parquet facts (assets, segments, Dagster runs, queries, feedback) published atomically "
    "for the DuckDB views behind /api/v1/stats and the MCP statistics resource.",
)
def analytics_facts(context: dg.AssetExecutionContext, stores: StoresResource) -> dg.MaterializeResult:
    settings = stores.settings
    tables = collect_facts(settings, stores.catalog, dagster_runs(context.instance))
    manifest = publish_facts(settings, tables)
    con = open_views(settings)
    try:
        rollups = rollup_rows(con)
        complete = facts_complete_result(con, stores.catalog)
    finally:
        con.close()
    return dg.MaterializeResult(
        metadata={
            **{f"rows_{name}": n for name, n in manifest["rows"].items()},
            **{f"rollup_{name}": n for name, n in rollups.items()},
            "published_at": manifest["published_at"],
        },
        check_results=[complete],
    )


PER_FILE_ASSETS = [media_pipeline]
SHARED_ASSETS = [vector_indexes, auto_collections, media_graph, analytics_facts]
