"""The numpy k-means and cosine silhouette give scikit-learn's labels and scores, bit for bit, on
clustered, noisy, duplicated and collection-shaped data; so the auto collections are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from graph_support import SegmentSpec, add_asset, picture
from picture_edits import crop, resize
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from dataflux_pipelines import clustering
from dataflux_pipelines.auto_collections import asset_embeddings, cluster_assets
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.clustering import cosine_silhouette, kmeans_labels
from dataflux_pipelines.settings import Settings


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _corpus(seed: int, n: int, dim: int, groups: int, noise: float, duplicates: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    x = centres[rng.integers(0, groups, n)] + rng.normal(scale=noise, size=(n, dim))
    x[:duplicates] = x[0]  # identical rows leave k-means clusters empty: the relocation path
    return _unit(x)


def _same_as_scikit_learn(x: np.ndarray, ks: range) -> None:
    with threadpool_limits(limits=1):  # as cluster_assets runs both: one thread's order of sums
        for k in ks:
            expected = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)
            labels = kmeans_labels(x, k)
            assert np.array_equal(labels, expected), f"k={k}"
            if len(set(expected.tolist())) > 1:
                assert cosine_silhouette(x, labels) == silhouette_score(x, expected, metric="cosine")


@pytest.mark.parametrize(
    ("seed", "n", "dim", "groups", "noise", "duplicates"),
    [
        (1, 20, 1664, 3, 0.5, 0),  # a small library: 20 assets, vision + text vectors
        (2, 57, 384, 5, 0.1, 0),  # well separated
        (3, 90, 67, 2, 2.0, 0),  # no structure to speak of
        (4, 40, 512, 4, 0.5, 15),  # many identical rows
        (5, 300, 64, 6, 0.5, 0),  # more rows than one block of Lloyd's assignment
    ],
)
def test_labels_and_silhouettes_equal_scikit_learn(
    seed: int, n: int, dim: int, groups: int, noise: float, duplicates: int
) -> None:
    _same_as_scikit_learn(_corpus(seed, n, dim, groups, noise, duplicates), range(2, 13))


def test_the_silhouette_in_several_chunks_equals_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    # Past ~11,000 assets the distances come in blocks of rows; shrink the working memory to get there.
    x = _corpus(6, 200, 32, 4, 0.5)
    labels = kmeans_labels(x, 4)
    monkeypatch.setattr(clustering, "WORKING_MEMORY_MIB", 200 * 8 * 30 / 2**20)
    with sklearn.config_context(working_memory=200 * 8 * 30 / 2**20):
        assert cosine_silhouette(x, labels) == silhouette_score(x, labels, metric="cosine")


def test_collections_from_real_picture_embeddings_equal_scikit_learn(settings: Settings) -> None:
    catalog = Catalog(settings)
    for name, seed in {"beach": 100, "forest": 200, "night": 300, "city": 400}.items():
        for i, variant in enumerate(
            [picture(seed), resize(picture(seed), 0.7), crop(picture(seed), 0.1), crop(picture(seed), 0.05)]
        ):
            add_asset(catalog, f"{name}-{i}.png", "image", [SegmentSpec(variant, {name: 0.9})])
    ids, vectors = asset_embeddings(catalog)
    _same_as_scikit_learn(vectors, range(2, len(ids)))
    clusters, info = cluster_assets(ids, vectors)
    assert info["k"] == 4 and len(clusters) == 4


def test_too_few_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 rows"):
        kmeans_labels(np.zeros((2, 4), dtype=np.float32), 3)
