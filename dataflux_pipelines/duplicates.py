"""Near-duplicate detection over vision vectors: re-encoded, resized or slightly cropped copies of
images and video shots across assets, and whole assets that share shots.

The duplicate threshold of each embedding space is measured by `bench/duplicates.py` (BENCHMARKS.md);
a space without a measurement gets similarity links only, never guessed duplicate links.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataflux_pipelines import layout
from dataflux_pipelines.layout import vector_table_name
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_SPACE

# Cosine similarity at or above which two segments are the same picture. visual-offline: 0.985 is the
# lowest threshold with precision 1.0 on both generated sets in BENCHMARKS.md (seeds 7 and 11);
# recall there is 0.45-0.47, because same-palette distractors reach 0.97-0.98.
DUPLICATE_THRESHOLDS: dict[str, float] = {VISUAL_OFFLINE_SPACE: 0.985}
# Lowest score still shown as "similar" (a display floor; neighbours are also capped at top-k).
# visual-offline scores are compressed near 1 (unrelated pictures of one palette reach 0.94).
SIMILAR_FLOORS: dict[str, float] = {VISUAL_OFFLINE_SPACE: 0.90, "text": 0.50}
SIMILAR_TOP_K = 5


def duplicate_threshold(space: str) -> float | None:
    """The measured duplicate threshold of an embedding space, or None where none was measured."""
    return DUPLICATE_THRESHOLDS.get(space)


def similar_floor(space: str) -> float:
    return SIMILAR_FLOORS.get(space, 0.5)


def space_for_table(table_name: str, known_spaces: Iterable[str] = (VISUAL_OFFLINE_SPACE,)) -> str:
    """The embedding space behind a `vision__…` table name (the slug loses punctuation)."""
    for space in known_spaces:
        if vector_table_name("vision", space) == table_name:
            return space
    return layout.vector_space_slug(table_name)


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def duplicate_pairs(
    vectors_a: np.ndarray,
    ids_a: Sequence[str],
    vectors_b: np.ndarray,
    ids_b: Sequence[str],
    threshold: float,
) -> list[tuple[str, str, float]]:
    """Every (a, b, cosine) with cosine >= threshold; exact, for small sets and tests."""
    if len(ids_a) == 0 or len(ids_b) == 0:
        return []
    sims = normalize(vectors_a) @ normalize(vectors_b).T
    rows, cols = np.nonzero(sims >= threshold)
    return [(ids_a[int(r)], ids_b[int(c)], float(sims[r, c])) for r, c in zip(rows, cols, strict=True)]


@dataclass(frozen=True)
class SharedSegments:
    """Two assets that share near-duplicate segments: how many, which, and the best score."""

    asset_a: str
    asset_b: str
    count: int
    pairs: tuple[tuple[str, str], ...]
    score: float


def shared_segments(
    pairs: Iterable[tuple[str, str, float]], asset_of: dict[str, str]
) -> list[SharedSegments]:
    """Fold segment duplicate pairs into asset pairs (a < b); `count` is the number of distinct shots
    of the asset with fewer matched shots, so a shot repeated in the other video counts once."""
    grouped: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for seg_x, seg_y, score in pairs:
        ax, ay = asset_of.get(seg_x), asset_of.get(seg_y)
        if ax is None or ay is None or ax == ay:
            continue
        if ax > ay:
            ax, ay, seg_x, seg_y = ay, ax, seg_y, seg_x
        key = (seg_x, seg_y)
        grouped[(ax, ay)][key] = max(score, grouped[(ax, ay)].get(key, -1.0))
    out = []
    for (a, b), seg_pairs in sorted(grouped.items()):
        count = min(len({x for x, _ in seg_pairs}), len({y for _, y in seg_pairs}))
        out.append(SharedSegments(a, b, count, tuple(sorted(seg_pairs)), max(seg_pairs.values())))
    return out


def duplicate_groups(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of duplicate links: each group is one picture in several copies."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for x in parent:
        groups[find(x)].append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))


# --- variants: what "the same picture" means, used by the benchmark and the tests ---------


def reencode(image: Image.Image, quality: int = 35) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def resize(image: Image.Image, factor: float = 0.5) -> Image.Image:
    w, h = image.size
    return image.resize((max(8, int(w * factor)), max(8, int(h * factor))), Image.Resampling.BILINEAR)


def crop(image: Image.Image, fraction: float = 0.10) -> Image.Image:
    """Cut `fraction` of the width and height in total, off-centre (more from the left and top)."""
    w, h = image.size
    dx, dy = int(w * fraction), int(h * fraction)
    left, top = (dx * 2) // 3, (dy * 2) // 3
    return image.crop((left, top, left + w - dx, top + h - dy))


def near_duplicate_variants(image: Image.Image) -> dict[str, Image.Image]:
    """The edits a near-duplicate must survive: re-encode, resize, 10% crop, and all three together."""
    return {
        "reencode_q35": reencode(image, 35),
        "resize_50": resize(image, 0.5),
        "crop_10": crop(image, 0.10),
        "crop_resize_reencode": reencode(resize(crop(image, 0.10), 0.6), 50),
    }


def precision_recall(
    scores: np.ndarray, is_duplicate: np.ndarray, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Precision, recall and F1 of `score >= t` for each threshold."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_duplicate, dtype=bool)
    out = []
    for t in thresholds:
        predicted = scores >= t
        tp = int(np.sum(predicted & truth))
        fp = int(np.sum(predicted & ~truth))
        fn = int(np.sum(~predicted & truth))
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(
            {
                "threshold": float(t),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
        )
    return out
