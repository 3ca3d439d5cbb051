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


def _separated(seed: int, n: int, dim: int, groups: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, groups, n)
    x = rng.normal(size=(groups, dim))[truth] + rng.normal(scale=0.3, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def test_fewer_assets_than_dimensions_cluster_as_in_the_full_space() -> None:
    # cluster_assets works in the rows' own span (20 x 20 here, not 20 x 1664): the same distances.
    from dataflux_pipelines.clustering import cosine_silhouette, kmeans_labels

    x, _ = _separated(1, 20, 1664, 3)
    _, info = cluster_assets([f"a{i:02d}" for i in range(20)], x)
    full = {k: cosine_silhouette(x, kmeans_labels(x, k)) for k in range(2, 13)}
    assert set(info["silhouettes"]) == set(full)
    for k, value in full.items():
        assert abs(info["silhouettes"][k] - value) < 1e-4, k
    assert info["k"] == max(full, key=lambda k: (round(full[k], 4), -k)) and "sampled" not in info


def test_a_library_larger_than_the_sample_is_clustered_from_it_and_every_asset_joins() -> None:
    x, truth = _separated(2, 240, 64, 4)
    ids = [f"a{i:03d}" for i in range(240)]
    clusters, info = cluster_assets(ids, x, sample=60)
    assert info["sampled"] == 60 and info["k"] == 4
    assert sorted(len(c) for c in clusters) == sorted(int((truth == g).sum()) for g in range(4))
    group_of = dict(zip(ids, truth.tolist(), strict=True))
    assert all(len({group_of[a] for a in members}) == 1 for members in clusters)  # nothing mixed
    # The same sample from one refresh to the next: the same clusters.
    assert cluster_assets(ids, x, sample=60)[0] == clusters


def test_asset_means_skip_missing_and_zero_vectors_and_follow_interleaved_segments() -> None:
    import numpy as np
    import pyarrow as pa

    from dataflux_pipelines.auto_collections import _means

    rng = np.random.default_rng(3)
    owners = ["b", "a", "b", "c", "a", "b", None, "d"]
    vectors = [rng.normal(size=4).tolist() for _ in owners]
    vectors[3] = [0.0, 0.0, 0.0, 0.0]  # c's only vector is all zero: c has no mean
    vectors[7] = None  # d's only vector is missing
    column = pa.array(vectors, type=pa.list_(pa.float32(), 4))
    got = _means(pa.chunked_array([pa.array(owners[:3]), pa.array(owners[3:])]), column)
    assert sorted(got) == ["a", "b"]
    for asset in ("a", "b"):
        rows = [np.asarray(v, np.float32) for o, v in zip(owners, vectors, strict=True) if o == asset]
        mean = np.mean([r / np.linalg.norm(r) for r in rows], axis=0)
        np.testing.assert_allclose(got[asset], mean / np.linalg.norm(mean), atol=1e-6)
