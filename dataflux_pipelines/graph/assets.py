"""Shared Dagster assets over all files: auto-generated collections and the published Kuzu graph."""

import dagster as dg

from dataflux_pipelines.auto_collections import refresh_auto_collections
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.build import publish_graph, top_concepts_markdown
from dataflux_pipelines.resources import DataFluxResource


@dg.asset(
    deps=[dg.AssetKey("segment_embeddings")],
    group_name="shared",
    kinds={"lancedb"},
    description="Clusters of asset embeddings (k chosen by silhouette), named by their top concepts, "
    "written to the `collections` table with auto_generated=true; ids survive small membership changes.",
)
def auto_collections(context: dg.AssetExecutionContext, dataflux: DataFluxResource) -> dg.MaterializeResult:
    report = refresh_auto_collections(Catalog(dataflux.settings()))
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
            "reason": report.get("reason"),
            "table": dg.MetadataValue.md("\n".join(table)),
        }
    )


@dg.asset(
    deps=[dg.AssetKey("segment_embeddings"), auto_collections],
    pool="kuzu_writer",
    group_name="shared",
    kinds={"kuzu"},
    description="The knowledge graph (assets, segments, collections, concepts; temporal, concept, "
    "similarity and near-duplicate relations) built from the catalog and per-file contributions, "
    "published as a new Kuzu snapshot with an atomic pointer swap.",
)
def media_graph(context: dg.AssetExecutionContext, dataflux: DataFluxResource) -> dg.MaterializeResult:
    settings = dataflux.settings()
    report = publish_graph(settings, Catalog(settings))
    build = report.build
    context.log.info(f"published graph snapshot v{report.snapshot.version} in {report.seconds:.2f} s")
    return dg.MaterializeResult(
        metadata={
            "snapshot_version": report.snapshot.version,
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
        }
    )


GRAPH_ASSETS = [auto_collections, media_graph]
