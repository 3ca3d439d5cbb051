"""The shared index-maintenance asset: FTS, scalar and ANN indexes kept fresh and tuned for recall."""

import dagster as dg

from dataflux_pipelines.catalog import connect
from dataflux_pipelines.embeddings.indexes import maintain_indexes
from dataflux_pipelines.resources import DataFluxResource


def _table(rows: list[dict]) -> str:
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
    description="Builds and refreshes the full-text, scalar and ANN indexes of the LanceDB tables, "
    "tunes search parameters for recall@10 >= 0.95 against exact search, and compacts old versions "
    "with a retention that concurrent readers survive.",
)
def vector_indexes(context: dg.AssetExecutionContext, dataflux: DataFluxResource) -> dg.MaterializeResult:
    report = maintain_indexes(connect(dataflux.settings()))
    vectors = report["vectors"]
    context.log.info(f"index maintenance: {len(vectors)} vector column(s), {report['seconds']} s")
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.json(report["tables"]),
            "vector_columns": dg.MetadataValue.md(_table(vectors)) if vectors else "none yet",
            "rows": sum(int(v.get("rows") or 0) for v in vectors),
            "indexed_rows": sum(int(v.get("indexed_rows") or 0) for v in vectors),
            "unindexed_rows": sum(int(v.get("unindexed_rows") or 0) for v in vectors),
            "min_recall_at_10": report["min_recall_at_k"],
            "seconds": report["seconds"],
        }
    )


INDEX_ASSETS = [vector_indexes]
