"""Dagster asset checks: what each file became, and whether the shared assets match the stores.

Per file (partitioned checks, evaluated inside the run that processed the file, one evaluation per
partition, so the UI shows them on that file's partition):
- `segments` / `segments_well_formed`: at least one segment, as many as the catalog row says, unique
  sequence numbers, time ranges inside the file, text-bearing segments carry text;
- `segments` / `keyframes_and_thumbnails_stored`: every keyframe and thumbnail a segment or the asset
  names exists in the object store;
- `segment_embeddings` / `embedded_with_current_models`: every segment has its text vector from the
  current text model and, where it has a keyframe, a vector from the current vision model(s);
- `segment_embeddings` / `transcript_and_text_coverage`: media with sound got a transcript pass, and
  pictures an on-screen text pass (a pass that found nothing passes; one that failed or was off does not).

Shared assets (checks returned with the materialization): index recall, the graph snapshot against the
catalog, the analytics facts against the catalog. `caught_up_with_files` checks (scheduled) say when a
shared asset lags files processed after its last refresh, naming them.
"""

import base64
import datetime as dt
import io
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import dagster as dg

# Not re-exported at the top level: the pointer that makes a check's result count for the
# materialization it verified (Dagster shows a partition's check as current only with it).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.lance_sql import literal
from dataflux_pipelines.objectstore import ObjectStore
from dataflux_pipelines.orchestration.partitions import media_files

MIN_RECALL = 0.95
TIME_SLACK_S = 0.5  # container durations are rounded; a segment may end this far past them
_TEXT_FIELDS = {"transcript": "transcript", "text": "text", "chunk": "text", "page": "text"}
_VISUAL = ("image", "video")
_NAMED = 20  # failing items named in a check's metadata

FILE_CHECKS: dict[str, tuple[str, str]] = {
    "segments_well_formed": (
        "segments",
        "At least one segment, as many as the catalog row says, unique "
        "sequence numbers, time ranges inside the file, text where text belongs.",
    ),
    "keyframes_and_thumbnails_stored": (
        "segments",
        "Every keyframe and thumbnail named by the file's "
        "segments and catalog row exists in the object store.",
    ),
    "embedded_with_current_models": (
        "segment_embeddings",
        "Every segment has its text vector from the "
        "current text model and, with a keyframe, vectors from the current "
        "vision models.",
    ),
    "transcript_and_text_coverage": (
        "segment_embeddings",
        "Media with sound had a transcript pass; "
        "pictures had an on-screen text pass (finding nothing is fine).",
    ),
}

# Partitioned check specs are a Dagster preview (1.13): one evaluation per file partition is what
# makes a file's checks visible on its partition, so the preview warning is expected here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    FILE_CHECK_SPECS = [
        dg.AssetCheckSpec(name, asset=asset, description=description, partitions_def=media_files)
        for name, (asset, description) in FILE_CHECKS.items()
    ]


# --- per file ---------------------------------------------------------------------------------------


def _malformed(asset: dict[str, Any], segments: Sequence[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    if not segments:
        return ["no segments"]
    if asset.get("segment_count") is not None and asset["segment_count"] != len(segments):
        problems.append(f"catalog says {asset['segment_count']} segments, {len(segments)} stored")
    numbers = [s.get("sequence_number") for s in segments]
    if len(set(numbers)) != len(numbers) or None in numbers:
        problems.append("sequence numbers missing or repeated")
    duration = asset.get("duration")
    for s in segments:
        start, end, n = s.get("start_time"), s.get("end_time"), s.get("sequence_number")
        if s.get("asset_id") != asset["id"]:
            problems.append(f"segment {n} belongs to {s.get('asset_id')}")
        if start is not None and end is not None:
            if not 0 <= start <= end:
                problems.append(f"segment {n}: time range {start}-{end}")
            elif duration is not None and end > duration + TIME_SLACK_S:
                problems.append(f"segment {n}: ends at {end:.2f} s, the file lasts {duration:.2f} s")
        field = _TEXT_FIELDS.get(s.get("segment_type") or "")
        if field and not (s.get(field) or "").strip():
            problems.append(f"segment {n} ({s.get('segment_type')}) has no {field}")
    return problems


def _missing_objects(
    store: ObjectStore, asset: dict[str, Any], segments: Sequence[dict[str, Any]]
) -> list[str]:
    wanted = {k for s in segments for k in (s.get("keyframe_path"), s.get("thumbnail_path")) if k}
    if asset.get("thumbnail_path"):
        wanted.add(asset["thumbnail_path"])
    if not wanted:
        return []
    present = {info.key for info in store.list(layout.asset_prefix(asset["id"]))}
    return sorted(wanted - present)


def _current_vectors(catalog: Catalog, table: str, version: str, asset_ids: Sequence[str]) -> set[str]:
    if table not in set(catalog.db.table_names()):
        return set()
    ids = ", ".join(literal(a) for a in asset_ids)
    rows = (
        catalog.db.open_table(table)
        .search()
        .where(f"asset_id IN ({ids}) AND model_version = {literal(version)}")
        .select(["segment_id"])
        .limit(None)
        .to_arrow()
    )
    return set(rows["segment_id"].to_pylist())


def _embedding_gaps(
    catalog: Catalog, registry: Any, assets: dict[str, dict[str, Any]], segments: dict[str, list[dict]]
) -> dict[str, list[str]]:
    text_version = registry.text.version
    visual_ids = [a for a, row in assets.items() if row.get("media_type") in _VISUAL]
    spaces: list[tuple[str, str]] = []
    if visual_ids:
        vision = registry.vision
        spaces.append((layout.vector_table_name("vision", vision.space), vision.version))
        image_model = registry.image_model
        if image_model is not None:
            spaces.append((layout.vector_table_name("vision", image_model.space), image_model.version))
    current = {table: _current_vectors(catalog, table, version, visual_ids) for table, version in spaces}
    gaps: dict[str, list[str]] = {}
    for asset_id, rows in segments.items():
        problems = []
        for s in rows:
            n = s.get("sequence_number")
            if s.get("text_model") != text_version:
                problems.append(
                    f"segment {n}: text vector from {s.get('text_model')!r}, current {text_version!r}"
                )
            if s.get("keyframe_path") and asset_id in visual_ids:
                problems.extend(
                    f"segment {n}: no current {table}" for table in current if s["id"] not in current[table]
                )
        gaps[asset_id] = problems
    return gaps


def _coverage(asset: dict[str, Any]) -> tuple[bool, list[str], dict[str, Any]]:
    summary = asset.get("summary") or {}
    media_type = asset.get("media_type")
    has_sound = media_type == "audio" or (
        media_type == "video" and bool((asset.get("metadata") or {}).get("audio_codec"))
    )
    has_pictures = media_type in _VISUAL
    problems: list[str] = []
    seen: dict[str, Any] = {}
    for wanted, key, what in (
        (has_sound, "transcripts", "transcript"),
        (has_pictures, "screen_text", "on-screen text"),
    ):
        if not wanted:
            continue
        status = (summary.get(key) or {}).get("status")
        seen[key] = {k: (summary.get(key) or {}).get(k) for k in ("status", "segments", "reason")}
        if status != "ok":
            reason = (summary.get(key) or {}).get("reason") or "no pass recorded"
            problems.append(f"{what}: {status or 'missing'} ({reason})")
    return not problems, problems, seen


def file_check_evaluations(
    catalog: Catalog,
    store: ObjectStore,
    registry: Any,
    asset_ids: Iterable[str],
    partition_of: dict[str, str],
    selected: set[str],
    instance: dg.DagsterInstance | None = None,
) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per file check per processed file, on that file's partition (pointing at the
    partition's latest materialization when `instance` is given, as the UI needs).

    `selected` names the checks this run carries (a re-embedding run selects fewer stages, and with
    them fewer checks)."""
    ids = list(asset_ids)
    if not ids:
        return
    assets = {row["id"]: row for row in catalog.get_assets(ids)}
    # One query for every file's segments and one event-log query per stage for the materializations
    # the checks point at (a query per file each cost ~9 ms a file: 2.8 s for 320 documents).
    segments = catalog.segments_for_assets(list(assets))
    gaps = (
        _embedding_gaps(catalog, registry, assets, segments)
        if "embedded_with_current_models" in selected
        else {}
    )
    stages = {FILE_CHECKS[name][0] for name in selected if name in FILE_CHECKS}
    latest = (
        {
            stage: _latest_materializations(instance, stage, [partition_of[a] for a in assets])
            for stage in stages
        }
        if instance is not None
        else {}
    )
    for asset_id, asset in assets.items():
        partition = partition_of[asset_id]
        rows = segments[asset_id]
        results: dict[str, tuple[bool, list[str], dict[str, Any]]] = {}
        if "segments_well_formed" in selected:
            bad = _malformed(asset, rows)
            results["segments_well_formed"] = (not bad, bad, {"segments": len(rows)})
        if "keyframes_and_thumbnails_stored" in selected:
            missing = _missing_objects(store, asset, rows)
            results["keyframes_and_thumbnails_stored"] = (not missing, missing, {"missing": len(missing)})
        if "embedded_with_current_models" in selected:
            gap = gaps.get(asset_id, [])
            results["embedded_with_current_models"] = (not gap, gap, {"segments": len(rows)})
        if "transcript_and_text_coverage" in selected:
            results["transcript_and_text_coverage"] = _coverage(asset)
        targets = {
            stage: latest[stage].get(partition) or _latest_materialization(instance, stage, partition)
            if instance is not None
            else None
            for stage in {FILE_CHECKS[name][0] for name in results}
        }
        for name, (passed, problems, extra) in results.items():
            stage = FILE_CHECKS[name][0]
            yield dg.AssetCheckEvaluation(
                target_materialization_data=targets[stage],
                asset_key=dg.AssetKey(stage),
                check_name=name,
                passed=passed,
                partition=partition,
                severity=dg.AssetCheckSeverity.ERROR,
                description=None if passed else f"{asset.get('filename')}: {problems[0]}",
                metadata={
                    "file": asset.get("filename") or asset_id,
                    **extra,
                    **({"problems": dg.MetadataValue.json(problems[:_NAMED])} if problems else {}),
                },
            )


def _latest_materialization(
    instance: dg.DagsterInstance, stage: str, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def _latest_materializations(
    instance: dg.DagsterInstance, stage: str, partitions: Sequence[str], chunk: int = 500
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The latest materialization of `stage` for each of these partitions, in one query per `chunk`.

    Newest first, as many records as partitions: a run's checks follow its own materializations, the
    newest of each partition, so each partition's first record is its latest. A partition that another
    run materialized again meanwhile can push one out of the page; the caller asks for it alone."""
    out: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for start in range(0, len(partitions), chunk):
        part = list(dict.fromkeys(partitions[start : start + chunk]))
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=part), limit=len(part)
        ).records
        for record in records:
            if record.partition_key is not None and record.partition_key not in out:
                out[record.partition_key] = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
    return out


def thumbnail_preview(store: ObjectStore, asset: dict[str, Any], width: int = 240) -> dg.MetadataValue | None:
    """The file's thumbnail as a small inline image for the materialization's metadata."""
    key = asset.get("thumbnail_path")
    if not key:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(store.get_bytes(key))) as image:
            image.thumbnail((width, width))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=70)
    except Exception:  # a missing thumbnail is reported by keyframes_and_thumbnails_stored, not here
        return None
    data = base64.b64encode(out.getvalue()).decode()
    return dg.MetadataValue.md(f"![{asset.get('filename')}](data:image/jpeg;base64,{data})")


# --- shared assets --------------------------------------------------------------------------------


def index_recall_result(report: dict[str, Any]) -> dg.AssetCheckResult:
    low = [
        f"{v.get('table')}.{v.get('column')}: recall@10 {v.get('recall_at_k')}"
        for v in report["vectors"]
        if v.get("recall_at_k") is not None and v["recall_at_k"] < MIN_RECALL
    ]
    return dg.AssetCheckResult(
        check_name="index_recall",
        passed=not low,
        metadata={
            "min_recall_at_10": report.get("min_recall_at_k"),
            "threshold": MIN_RECALL,
            "indexed_columns": sum(1 for v in report["vectors"] if v.get("index_type")),
            **({"below_threshold": dg.MetadataValue.json(low)} if low else {}),
        },
        description=None if not low else f"{len(low)} vector column(s) below recall@10 {MIN_RECALL}",
    )


def _names(catalog: Catalog, ids: Iterable[str]) -> list[str]:
    ids = sorted(ids)[:_NAMED]
    rows = {r["id"]: r.get("filename") for r in catalog.get_assets(ids)} if ids else {}
    return [f"{rows.get(i) or '?'} ({i})" for i in ids]


def _set_difference_result(
    check_name: str, what: str, expected: set[str], found: set[str], catalog: Catalog
) -> dg.AssetCheckResult:
    missing, extra = expected - found, found - expected
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not missing and not extra,
        metadata={
            "expected": len(expected),
            "found": len(found),
            **({"missing_files": dg.MetadataValue.json(_names(catalog, missing))} if missing else {}),
            **({"unexpected_ids": dg.MetadataValue.json(sorted(extra)[:_NAMED])} if extra else {}),
        },
        description=None
        if not missing and not extra
        else f"{what}: {len(missing)} file(s) missing, {len(extra)} unexpected",
    )


def graph_matches_catalog_result(
    snapshot_path: Any, catalog: Catalog, excluded: Iterable[str]
) -> dg.AssetCheckResult:
    """Reopen the published snapshot read-only and compare its Asset nodes with the catalog."""
    import kuzu

    db = kuzu.Database(str(snapshot_path), read_only=True)
    try:
        conn = kuzu.Connection(db)
        result = conn.execute("MATCH (a:Asset) RETURN a.id")
        assert not isinstance(result, list)  # one statement, one result
        found = {row[0] for row in result.get_all()}  # type: ignore[index]  # rows are lists
        conn.close()
    finally:
        db.close()
    expected = set(_catalog_ids(catalog)) - set(excluded)
    return _set_difference_result("graph_matches_catalog", "graph snapshot", expected, found, catalog)


def facts_complete_result(con: Any, catalog: Catalog) -> dg.AssetCheckResult:
    found = {row[0] for row in con.execute("SELECT id FROM assets").fetchall()}
    return _set_difference_result(
        "facts_complete", "analytics facts", set(_catalog_ids(catalog)), found, catalog
    )


def _catalog_ids(catalog: Catalog) -> list[str]:
    table = catalog.assets
    return table.search().select(["id"]).limit(max(table.count_rows(), 1)).to_arrow()["id"].to_pylist()


SHARED_CHECK_SPECS = {
    "vector_indexes": [
        dg.AssetCheckSpec(
            "index_recall",
            asset="vector_indexes",
            description=f"Every ANN index answers recall@10 >= {MIN_RECALL} against exact search.",
        )
    ],
    "media_graph": [
        dg.AssetCheckSpec(
            "graph_matches_catalog",
            asset="media_graph",
            description="The published snapshot holds exactly the catalog's files (minus deleted ones).",
        )
    ],
    "analytics_facts": [
        dg.AssetCheckSpec(
            "facts_complete",
            asset="analytics_facts",
            description="The published asset facts hold every file in the catalog.",
        )
    ],
}


# --- lag ------------------------------------------------------------------------------------------


def files_processed_since(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, limit: int = 1000
) -> list[str]:
    """Partitions (files) whose embeddings were materialized after `asset_key` was last refreshed."""
    last = instance.fetch_materializations(asset_key, limit=1).records
    since = last[0].timestamp if last else 0.0
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("segment_embeddings"), after_timestamp=since), limit=limit
    ).records
    return sorted({r.partition_key for r in records if r.partition_key})


def _lag_check(asset: str, grace: dt.timedelta) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="caught_up_with_files",
        description=f"No file processed more than {int(grace.total_seconds() // 60)} min ago is missing "
        f"from {asset} (the shared refresh runs after every processing run).",
    )
    def caught_up(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        pending = files_processed_since(context.instance, dg.AssetKey(asset))
        cutoff = (dt.datetime.now(dt.UTC) - grace).timestamp()
        old = []
        if pending:
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("segment_embeddings"), asset_partitions=pending),
                limit=len(pending) * 4,
            ).records
            old = sorted({r.partition_key for r in records if r.partition_key and r.timestamp < cutoff})
        return dg.AssetCheckResult(
            passed=not old,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "files_since_last_refresh": len(pending),
                **({"lagging_files": dg.MetadataValue.json(old[:_NAMED])} if old else {}),
            },
            description=None if not old else f"{asset} lags {len(old)} file(s) processed over {grace} ago",
        )

    return caught_up


LAG_GRACE = dt.timedelta(minutes=30)
LAG_CHECKS = [
    _lag_check(a, LAG_GRACE) for a in ("vector_indexes", "auto_collections", "media_graph", "analytics_facts")
]
