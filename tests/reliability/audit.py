"""What the stores hold after a hostile run: lost files, duplicated rows, stuck and half-written files."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog, table_names
from dataflux_pipelines.settings import Settings


@dataclass
class Audit:
    assets: dict[str, dict[str, Any]]
    segments_per_asset: Counter
    duplicates: list[str] = field(default_factory=list)  # "table: id" for every repeated id
    stuck: list[str] = field(default_factory=list)  # asset ids still queued or processing
    half_written: list[str] = field(default_factory=list)  # failed with rows, completed without

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.stuck or self.half_written)


def audit(settings: Settings) -> Audit:
    """Read every table once and check the invariants the reliability suite counts."""
    catalog = Catalog(settings, reader=True)
    names = table_names(catalog.db)
    assets = (
        catalog.db.open_table(layout.ASSETS_TABLE).to_arrow().to_pylist()
        if layout.ASSETS_TABLE in names
        else []
    )
    segments = (
        catalog.db.open_table(layout.SEGMENTS_TABLE).to_arrow().select(["id", "asset_id"]).to_pylist()
        if layout.SEGMENTS_TABLE in names
        else []
    )
    out = Audit({a["id"]: a for a in assets}, Counter(s["asset_id"] for s in segments))
    for table, ids in (("assets", [a["id"] for a in assets]), ("segments", [s["id"] for s in segments])):
        out.duplicates += [f"{table}: {i}" for i, n in Counter(ids).items() if n > 1]
    for name in names:
        if layout.VECTOR_TABLE_SEPARATOR in name:
            ids = catalog.db.open_table(name).to_arrow().column("segment_id").to_pylist()
            out.duplicates += [f"{name}: {i}" for i, n in Counter(ids).items() if n > 1]
    for asset_id, row in out.assets.items():
        if row["status"] in ("queued", "processing"):
            out.stuck.append(asset_id)
        elif row["status"] == "failed" and out.segments_per_asset[asset_id] and not row.get("segment_count"):
            out.half_written.append(asset_id)  # a first attempt failed but left segments behind
        elif row["status"] == "completed" and out.segments_per_asset[asset_id] != (
            row.get("segment_count") or 0
        ):
            out.half_written.append(asset_id)
    return out
