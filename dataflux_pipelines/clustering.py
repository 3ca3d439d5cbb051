"""K-means and the cosine silhouette in numpy, computed as scikit-learn 1.9 computes
`KMeans(n_clusters=k, n_init=10, random_state=0)` (Lloyd, k-means++) and
`silhouette_score(..., metric="cosine")` on float32 rows, step for step.

Importing scikit-learn (its estimator base pulls in scipy.stats) cost 0.7-1.0 s of every
`dataflux process` that clustered its collections, more than the clustering itself. The steps below
follow scikit-learn's float32 arithmetic (same random draws, same accumulation order, same
reciprocals), so the labels are the same; `tests/test_clustering.py` compares them with scikit-learn's.
"""

from __future__ import annotations

import math

import numpy as np

# scikit-learn's defaults: Lloyd's maximum iterations, the relative tolerance on the centre shift,
# the working memory (MiB) its chunked pairwise distances stay within.
MAX_ITER = 300
TOL = 1e-4
WORKING_MEMORY_MIB = 1024
CHUNK_ROWS = 256  # rows per block of Lloyd's assignment step


def kmeans_labels(vectors: np.ndarray, k: int, *, n_init: int = 10, seed: int = 0) -> np.ndarray:
    """Cluster labels of the best of `n_init` k-means++ seeded Lloyd runs (lowest inertia)."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2 or x.shape[0] < k:
        raise ValueError(f"need a 2-d array with at least {k} rows, got shape {x.shape}")
    tol = np.mean(np.var(x, axis=0)) * TOL
    x -= x.mean(axis=0)  # distances computed around the mean are more accurate
    x_sq = np.einsum("ij,ij->i", x, x)
    weights = np.ones(x.shape[0], dtype=np.float32)
    random = np.random.RandomState(seed)
    best_labels: np.ndarray | None = None
    best_inertia = 0.0
    for _ in range(n_init):
        centres = _kmeans_plusplus(x, k, x_sq, weights, random)
        labels, inertia = _lloyd(x, centres, tol)
        if best_labels is None or (inertia < best_inertia and not _same_clustering(labels, best_labels, k)):
            best_labels, best_inertia = labels, inertia
    assert best_labels is not None
    return best_labels


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of float32 rows: computed in float64 in scikit-learn's blocks of
    rows (sized to ~10 MiB), returned as float32."""
    d = a.shape[1]
    memory = max(((a.shape[0] + b.shape[0]) * d + a.shape[0] * b.shape[0]) / 10, 10 * 2**17)
    size = max(int((-2 * d + math.sqrt((2 * d) ** 2 + 4 * memory)) / 2), 1)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float32)
    for i in range(0, a.shape[0], size):
        a64 = a[i : i + size].astype(np.float64)
        a_sq = np.einsum("ij,ij->i", a64, a64)[:, None]
        for j in range(0, b.shape[0], size):
            b64 = b[j : j + size].astype(np.float64)
            block = -2 * (a64 @ b64.T)
            block += a_sq
            block += np.einsum("ij,ij->i", b64, b64)[None, :]
            out[i : i + size, j : j + size] = block.astype(np.float32)
    np.maximum(out, 0, out=out)
    return out


def _kmeans_plusplus(
    x: np.ndarray, k: int, x_sq: np.ndarray, weights: np.ndarray, random: np.random.RandomState
) -> np.ndarray:
    """Greedy k-means++: each next centre is the best of 2 + log(k) candidates drawn by distance."""
    n = x.shape[0]
    centres = np.empty((k, x.shape[1]), dtype=x.dtype)
    trials = 2 + int(np.log(k))
    first = random.choice(n, p=weights / weights.sum())
    centres[0] = x[first]
    closest = _sq_distances(centres[0, np.newaxis], x)
    potential = closest @ weights
    for c in range(1, k):
        draws = random.uniform(size=trials) * potential
        candidates = np.searchsorted(np.cumsum(weights * closest), draws)
        np.clip(candidates, None, closest.size - 1, out=candidates)
        to_candidates = _sq_distances(x[candidates], x)
        np.minimum(closest, to_candidates, out=to_candidates)
        potentials = to_candidates @ weights.reshape(-1, 1)
        best = int(np.argmin(potentials))
        potential = potentials[best]
        closest = to_candidates[best]
        centres[c] = x[candidates[best]]
    return centres


def _row_sq_sums(diff: np.ndarray) -> np.ndarray:
    """Per row, the sum of squares in float32 in scikit-learn's order (four at a time, then the rest)."""
    sq = diff * diff
    n4 = sq.shape[1] // 4 * 4
    quads = sq[:, :n4].reshape(sq.shape[0], -1, 4)
    total = np.zeros(sq.shape[0], dtype=np.float32)
    if n4:
        grouped = ((quads[:, :, 0] + quads[:, :, 1]) + quads[:, :, 2]) + quads[:, :, 3]
        total = np.cumsum(np.concatenate([total[:, None], grouped], axis=1), axis=1)[:, -1]
    for i in range(n4, sq.shape[1]):
        total = total + sq[:, i]
    return total.astype(np.float32)


def _assign(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest centre of each row (the first of equals), by ||c||^2 - 2 x.c in float32, in
    scikit-learn's chunks of 256 rows."""
    centre_sq = np.einsum("ij,ij->i", centres, centres)
    labels = np.empty(x.shape[0], dtype=np.int32)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        chunk = x[start : start + CHUNK_ROWS]
        distances = np.float32(-2.0) * (chunk @ centres.T) + centre_sq[None, :]
        labels[start : start + CHUNK_ROWS] = np.argmin(distances, axis=1)
    return labels


def _lloyd(x: np.ndarray, centres: np.ndarray, tol: float) -> tuple[np.ndarray, float]:
    """Lloyd's iterations from `centres` until no label changes or the centres move less than `tol`."""
    k = centres.shape[0]
    labels_old = np.full(x.shape[0], -1, dtype=np.int32)
    strict = False
    labels = labels_old
    for _ in range(MAX_ITER):
        labels = _assign(x, centres)
        sums = _cluster_sums(x, labels, k)
        counts = np.bincount(labels, minlength=k).astype(np.float32)
        _relocate_empty(x, centres, sums, counts, labels)
        new = _average(sums, counts)
        shift = np.sqrt(_row_sq_sums(new - centres))
        centres = new
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if (shift**2).sum() <= tol:
            break
        labels_old = labels
    if not strict:
        labels = _assign(x, centres)  # labels that match the final centres
    inertia = np.cumsum(np.concatenate([[np.float32(0)], _row_sq_sums(x - centres[labels])]))[-1]
    return labels, float(inertia)


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per cluster, the float32 sum of its rows added one after another in row order, as
    scikit-learn's single-threaded loop adds them (a running sum: the last row of a cumsum)."""
    sums = np.zeros((k, x.shape[1]), dtype=x.dtype)
    for j in range(k):
        members = x[labels == j]
        if len(members):
            sums[j] = np.cumsum(members, axis=0)[-1]
    return sums


def _relocate_empty(
    x: np.ndarray, centres: np.ndarray, sums: np.ndarray, counts: np.ndarray, labels: np.ndarray
) -> None:
    """Give each empty cluster the row farthest from its centre, taken out of its own cluster."""
    empty = np.where(np.equal(counts, 0))[0]
    if len(empty) == 0:
        return
    distances = ((x - centres[labels]) ** 2).sum(axis=1)
    far = np.argpartition(distances, -len(empty))[: -len(empty) - 1 : -1]
    if np.max(distances) == 0:
        return
    for new_id, row in zip(empty, far, strict=True):
        old_id = labels[row]
        sums[old_id] -= x[row]
        sums[new_id] = x[row]
        counts[new_id] = 1
        counts[old_id] -= 1


def _average(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Centres from sums: times the float32 reciprocal of the count; an empty one copies the largest."""
    centres = sums.copy()
    largest = int(np.argmax(counts))
    for j, count in enumerate(counts):
        if count > 0:
            centres[j] *= np.float32(1.0 / float(count))
        else:
            centres[j] = centres[largest]
    return centres


def _same_clustering(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    """Whether two labelings group the rows alike (labels permuted)."""
    mapping = np.full(k, -1, dtype=np.int64)
    for left, right in zip(a.tolist(), b.tolist(), strict=True):
        if mapping[left] == -1:
            mapping[left] = right
        elif mapping[left] != right:
            return False
    return True


def cosine_silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the rows under cosine distance (1 - cosine similarity, in [0, 2])."""
    x = np.asarray(vectors)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    freqs = np.bincount(codes)
    n = len(codes)
    if not 1 < len(freqs) < n:
        raise ValueError(f"the silhouette needs 2 to {n - 1} clusters, got {len(freqs)}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    unit = x / norms[:, None]
    rows = max(1, min(int(WORKING_MEMORY_MIB * 2**20 // (8 * n)), n))
    intra_parts, inter_parts = [], []
    for start in range(0, n, rows):
        chunk = unit[start : start + rows]
        distances = np.clip(1 - chunk @ unit.T, 0.0, 2.0)
        if rows >= n:  # scikit-learn zeroes a row's distance to itself only when there is one chunk
            np.fill_diagonal(distances, 0.0)
        per_cluster = np.zeros((len(chunk), len(freqs)), dtype=distances.dtype)
        for i in range(len(chunk)):
            per_cluster[i] += np.bincount(codes, weights=distances[i], minlength=len(freqs))
        own = (np.arange(len(chunk)), codes[start : start + len(chunk)])
        intra_parts.append(per_cluster[own])
        per_cluster[own] = np.inf
        per_cluster /= freqs
        inter_parts.append(per_cluster.min(axis=1))
    intra, inter = np.concatenate(intra_parts), np.concatenate(inter_parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra /= (freqs - 1).take(codes, mode="clip")
        scores = inter - intra
        scores /= np.maximum(intra, inter)
    return float(np.mean(np.nan_to_num(scores)))
