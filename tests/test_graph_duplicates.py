"""Near-duplicates on generated variants with the offline descriptor, and folding shots into assets."""

from __future__ import annotations

import numpy as np
from graph_support import picture
from picture_edits import duplicate_pairs, near_duplicate_variants, precision_recall

from dataflux_pipelines.duplicates import duplicate_groups, duplicate_threshold, shared_segments
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_SPACE, describe_images


def test_resized_and_cropped_copies_are_duplicates_and_other_pictures_are_not() -> None:
    threshold = duplicate_threshold(VISUAL_OFFLINE_SPACE)
    assert threshold is not None
    images, groups, kinds = [], [], []
    for seed in range(8):
        base = picture(1000 + seed, size=(256, 192))  # the size the benchmark measured
        images.append(base)
        groups.append(seed)
        kinds.append("original")
        for name, variant in near_duplicate_variants(base).items():
            images.append(variant)
            groups.append(seed)
            kinds.append(name)
    vectors = describe_images(images)
    sims = vectors @ vectors.T
    g = np.asarray(groups)
    iu = np.triu_indices(len(g), k=1)
    [row] = precision_recall(sims[iu], (g[:, None] == g[None, :])[iu], [threshold])
    assert row["precision"] == 1.0
    # Every resized and every 10%-cropped copy is found from its original (the benchmark's recall 1.0 edits).
    k = np.asarray(kinds)
    for edit in ("resize_50", "crop_10"):
        for i in np.nonzero(k == edit)[0]:
            original = np.nonzero((g == g[i]) & (k == "original"))[0][0]
            assert sims[i, original] >= threshold, (edit, float(sims[i, original]))


def test_videos_sharing_shots_fold_into_one_asset_pair_with_count_and_pairs() -> None:
    asset_of = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}
    pairs = [
        ("a1", "b1", 0.99),
        ("b1", "a1", 0.985),
        ("a2", "b2", 0.98),
        ("a3", "b2", 0.981),
        ("a1", "a2", 0.99),
    ]
    [ab] = shared_segments(pairs, asset_of)
    assert (ab.asset_a, ab.asset_b, ab.count) == ("A", "B", 2)
    assert ab.pairs == (("a1", "b1"), ("a2", "b2"), ("a3", "b2")) and ab.score == 0.99
    assert duplicate_groups([("A", "B"), ("B", "C"), ("D", "E")]) == [["A", "B", "C"], ["D", "E"]]
    v = np.eye(3, dtype=np.float32)
    assert duplicate_pairs(v, ["x", "y", "z"], v[:1], ["q"], 0.9) == [("x", "q", 1.0)]
