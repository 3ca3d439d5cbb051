"""Auto-generated collections: clusters from the data, named by concepts, stable across refreshes."""

from __future__ import annotations

from graph_support import SegmentSpec, add_asset, picture
from picture_edits import crop, resize

from dataflux_pipelines import layout, records
from dataflux_pipelines.auto_collections import cluster_assets, refresh_auto_collections
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.settings import Settings

GROUPS = {"beach": 100, "forest": 200, "night": 300}


def _group(catalog: Catalog, name: str, seed: int, n: int) -> list[str]:
    ids = []
    for i in range(n):
        variant = [
            picture(seed),
            resize(picture(seed), 0.7),
            crop(picture(seed), 0.1),
            crop(picture(seed), 0.05),
        ][i % 4]
        asset_id, _ = add_asset(
            catalog, f"{name}-{i}.png", "image", [SegmentSpec(variant, {name: 0.9, "photo": 0.3})]
        )
        ids.append(asset_id)
    return ids


def _auto(catalog: Catalog) -> dict[str, dict]:
    rows = catalog.table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA).to_arrow().to_pylist()
    return {r["id"]: r for r in rows if r["auto_generated"]}


def test_collections_are_found_from_the_data_named_by_concepts_and_stable_across_refreshes(
    settings: Settings,
) -> None:
    catalog = Catalog(settings)
    user = catalog.table(layout.COLLECTIONS_TABLE, records.COLLECTIONS_SCHEMA)
    user.add(
        [
            {
                "id": "00000000-0000-5000-8000-000000000001",
                "name": "mine",
                "auto_generated": False,
                "asset_ids": [],
            }
        ]
    )
    members = {name: set(_group(catalog, name, seed, 4)) for name, seed in GROUPS.items()}

    report = refresh_auto_collections(catalog)
    assert report["k"] == 3
    first = _auto(catalog)
    assert {frozenset(r["asset_ids"]) for r in first.values()} == {frozenset(m) for m in members.values()}
    names = {r["name"].split(" · ")[0] for r in first.values()}
    assert names == set(GROUPS)

    # One more beach picture: membership barely changes, so ids and names stay.
    members["beach"].add(_group(catalog, "beach-extra", GROUPS["beach"], 1)[0])
    refresh_auto_collections(catalog)
    second = _auto(catalog)
    assert set(second) == set(first)
    assert {r["name"] for r in second.values()} == {r["name"] for r in first.values()}
    assert {frozenset(r["asset_ids"]) for r in second.values()} == {frozenset(m) for m in members.values()}
    assert second[next(i for i, r in first.items() if r["name"].startswith("beach"))]["created_at"] == next(
        r["created_at"] for r in first.values() if r["name"].startswith("beach")
    )
    # The user's own collection is never touched.
    rows = user.to_arrow().to_pylist()
    assert [r["name"] for r in rows if not r["auto_generated"]] == ["mine"]


def test_too_few_assets_give_no_collections_and_say_why(settings: Settings) -> None:
    catalog = Catalog(settings)
    _group(catalog, "beach", 100, 2)
    report = refresh_auto_collections(catalog)
    assert report["collections"] == [] and "at least" in report["reason"]
    assert _auto(catalog) == {}


def test_identical_embeddings_have_no_cluster_structure() -> None:
    import numpy as np

    vectors = np.ones((6, 8), dtype=np.float32)
    clusters, info = cluster_assets([f"a{i}" for i in range(6)], vectors)
    assert clusters == [] and info["reason"]
