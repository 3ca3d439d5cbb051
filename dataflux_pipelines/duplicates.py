"""Near-duplicates: re-encoded, resized, cropped, recoloured, captioned or mirrored copies of pictures,
and copies of video shots inside other videos.

Candidates come from the learned embedding (EfficientNet-Lite0 pooled features) or a perceptual hash
(pHash, mirror-aware); a verification step then scores each candidate pair from four features (embedding
cosine, pHash and dHash similarity, `visual-offline` descriptor cosine, and the best correlation of
small grey thumbnails over crop and mirror views) with a logistic model fitted by
`bench/duplicates.py` on its tuning seed. Pictures without content (black or single-colour frames, title
cards, slates) are never duplicates of anything. Pure numpy: no model is loaded here.
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from dataflux_pipelines import layout
from dataflux_pipelines.layout import vector_table_name
from dataflux_pipelines.models.efficientnet import EFFICIENTNET_SPACE
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_SPACE

# Cosine similarity at or above which two segments are the same picture, per space, for the
# single-vector graph links. visual-offline: 0.985 (precision 1.0, recall 0.45 on the old bench);
# efficientnet-lite0 has none on purpose: its duplicates come from the verified rule (VERIFY_* below).
DUPLICATE_THRESHOLDS: dict[str, float] = {VISUAL_OFFLINE_SPACE: 0.985}
# Lowest score still shown as "similar" (a display floor; neighbours are also capped at top-k).
# visual-offline scores are compressed near 1 (unrelated pictures of one palette reach 0.94).
# efficientnet-lite0 on the duplicate bench's real frames: frames of different clips 0.26 median, 0.55 at
# the 99th percentile; other shots of the same clip 0.45 median, 0.72 at the 95th; so 0.6 means "alike".
SIMILAR_FLOORS: dict[str, float] = {VISUAL_OFFLINE_SPACE: 0.90, EFFICIENTNET_SPACE: 0.60, "text": 0.50}
SIMILAR_TOP_K = 5

# Candidate generation: a pair is verified when either test passes (both generous; verification decides).
CANDIDATE_COSINE = 0.60
CANDIDATE_HASH_SIMILARITY = 0.70  # 1 - Hamming/64 of pHash, mirror-aware
# Verification: logistic weights over FEATURES (below) and a bias, fitted by `bench/duplicates.py` on
# its tuning seed (46 real frames x 8 edits). The threshold: the tune rule (best F1 at precision >= 0.99)
# gave 0.67, which on the held-out seed had precision 0.93 (same-singer close-ups of one set); 0.8 was
# then set from that held-out error and is checked on a fresh set (other frames of the held-out shots,
# seed 13) that played no part in any choice. Figures for all three in BENCHMARKS.md.
VERIFY_WEIGHTS = np.array([1.68, 6.28, 6.12, 0.02, 5.02])
VERIFY_BIAS = -14.76
VERIFY_THRESHOLD = 0.80
# A picture is "without content" when nearly all of it is one colour (black intros, slates, title cards
# with a line of text): the share of pixels within a small distance of the dominant colour.
_FLAT_DISTANCE = 24.0
FLAT_SHARE = 0.80


def duplicate_threshold(space: str) -> float | None:
    """The measured duplicate threshold of an embedding space, or None where none was measured."""
    return DUPLICATE_THRESHOLDS.get(space)


def similar_floor(space: str) -> float:
    return SIMILAR_FLOORS.get(space, 0.5)


def space_for_table(
    table_name: str, known_spaces: Iterable[str] = (VISUAL_OFFLINE_SPACE, EFFICIENTNET_SPACE)
) -> str:
    """The embedding space behind a `vision__…` table name (the slug loses punctuation)."""
    for space in known_spaces:
        if vector_table_name("vision", space) == table_name:
            return space
    return layout.vector_space_slug(table_name)


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


# --- perceptual hashes (64-bit, as unsigned ints) -----------------------------------------


def _grey(image: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    if pil.mode != "L":
        pil = pil.convert("L")
    # LANCZOS like the classic implementations, so the hashes agree with the imagehash reference.
    return np.asarray(pil.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def _pack(bits: np.ndarray) -> int:
    out = 0
    for bit in bits.ravel():
        out = (out << 1) | int(bool(bit))
    return out


def dhash(image: Image.Image | np.ndarray) -> int:
    """Difference hash: is each pixel brighter than its right neighbour, on a 9x8 grey thumbnail."""
    grey = _grey(image, (9, 8))
    return _pack(grey[:, 1:] > grey[:, :-1])


@functools.cache
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash(image: Image.Image | np.ndarray) -> int:
    """DCT hash: the 8x8 lowest frequencies of a 32x32 grey thumbnail against their median."""
    d = _dct_matrix()
    coeffs = d @ _grey(image, (32, 32)) @ d.T
    low = coeffs[:8, :8]
    return _pack(low > np.median(low))


def mirror(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image.convert("RGB"))


def hash_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - Hamming distance / 64 for every pair of two arrays of 64-bit hashes: (len(a), len(b))."""
    x = np.asarray(a, dtype=np.uint64)[:, None] ^ np.asarray(b, dtype=np.uint64)[None, :]
    return 1.0 - np.bitwise_count(x).astype(np.float64) / 64.0


def is_flat(image: Image.Image | np.ndarray) -> bool:
    """True for pictures without content: black or single-colour frames, title cards and slates."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    rgb = np.asarray(pil.convert("RGB").resize((64, 64), Image.Resampling.BOX), dtype=np.float64).reshape(
        -1, 3
    )
    dominant = np.median(rgb, axis=0)
    share = float(np.mean(np.linalg.norm(rgb - dominant, axis=1) <= _FLAT_DISTANCE))
    return share >= FLAT_SHARE


THUMB_SIDE = 32  # grey thumbnail kept per picture for the pixel check (1 KiB)
TOP_SHARE = 0.8  # captions sit at the bottom: the top 80% is compared too


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(
        image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX), dtype=np.uint8
    )


def _top(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((0, 0, w, max(1, int(h * TOP_SHARE))))


@dataclass(frozen=True)
class Signature:
    """What verification compares for one picture (keyframe or image), letterbox bars trimmed first."""

    embedding: np.ndarray  # learned, unit length
    descriptor: np.ndarray  # visual-offline, unit length
    # 64-bit hashes of the whole picture and of its top 80%, each also of the mirrored picture:
    # (phash, phash mirrored, top phash, top phash mirrored), the same for dhash.
    phashes: tuple[int, int, int, int]
    dhashes: tuple[int, int, int, int]
    thumb: np.ndarray  # (32, 32) uint8 grey, whole picture
    thumb_top: np.ndarray  # (32, 32) uint8 grey, top 80%
    flat: bool

    @property
    def phash(self) -> int:
        return self.phashes[0]

    # The crop/mirror views of each thumbnail, as unit rows for the pixel check: computed once per
    # signature, however many pairs it is compared in (a shot's frames meet every candidate shot's).
    @functools.cached_property
    def views(self) -> np.ndarray:
        return _unit_rows(_views(self.thumb))

    @functools.cached_property
    def views_top(self) -> np.ndarray:
        return _unit_rows(_views(self.thumb_top))

    @property
    def dhash(self) -> int:
        return self.dhashes[0]

    def hashes(self) -> dict[str, Any]:
        """JSON-safe form for storage (segment `semantic_features`); `from_stored` reads it back."""
        return {
            "phash": [f"{h:016x}" for h in self.phashes],
            "dhash": [f"{h:016x}" for h in self.dhashes],
            "thumb": base64.b64encode(self.thumb.tobytes()).decode(),
            "thumb_top": base64.b64encode(self.thumb_top.tobytes()).decode(),
            "flat": self.flat,
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any], embedding: np.ndarray, descriptor: np.ndarray) -> Signature:
        def thumb(key: str) -> np.ndarray:
            return np.frombuffer(base64.b64decode(stored[key]), dtype=np.uint8).reshape(
                THUMB_SIDE, THUMB_SIDE
            )

        return cls(
            embedding=np.asarray(embedding, dtype=np.float32),
            descriptor=np.asarray(descriptor, dtype=np.float32),
            phashes=tuple(int(h, 16) for h in stored["phash"]),  # type: ignore[arg-type]
            dhashes=tuple(int(h, 16) for h in stored["dhash"]),  # type: ignore[arg-type]
            thumb=thumb("thumb"),
            thumb_top=thumb("thumb_top"),
            flat=bool(stored["flat"]),
        )


def signature(image: Image.Image, embedding: np.ndarray, descriptor: np.ndarray) -> Signature:
    """A picture's signature from its pixels and its two vectors (computed by the models in batches)."""
    from dataflux_pipelines.models.efficientnet import trim_borders

    rgb = image.convert("RGB")
    # Every hash and thumbnail is of the grey picture: converted once, then mirrored and cropped (grey
    # conversion is per pixel, so this is the same grey picture as converting each view).
    trimmed = trim_borders(rgb).convert("L")
    top = _top(trimmed)
    views = (trimmed, ImageOps.mirror(trimmed), top, ImageOps.mirror(top))
    return Signature(
        embedding=np.asarray(embedding, dtype=np.float32),
        descriptor=np.asarray(descriptor, dtype=np.float32),
        phashes=tuple(phash(v) for v in views),  # type: ignore[arg-type]
        dhashes=tuple(dhash(v) for v in views),  # type: ignore[arg-type]
        thumb=_thumb(trimmed),
        thumb_top=_thumb(top),
        flat=is_flat(rgb),
    )


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32) - x.mean(axis=-1, keepdims=True, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


@functools.cache
def _view_boxes() -> tuple[tuple[float, float, float, float, bool], ...]:
    """Crops of a thumbnail (3 scales x 3x3 offsets, whole once), each also mirrored: what a crop,
    resize or mirror of the picture looks like from the other side."""
    boxes = []
    for flip in (False, True):
        for scale in (1.0, 0.9, 0.8):
            side = THUMB_SIDE * scale
            offsets = [(0.0, 0.0)] if scale == 1.0 else [(x, y) for x in (0, 0.5, 1) for y in (0, 0.5, 1)]
            for ox, oy in offsets:
                x, y = (THUMB_SIDE - side) * ox, (THUMB_SIDE - side) * oy
                boxes.append((x, y, min(float(THUMB_SIDE), x + side), min(float(THUMB_SIDE), y + side), flip))
    return tuple(boxes)


def _views(thumb: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(thumb)
    out = []
    for x0, y0, x1, y1, flip in _view_boxes():
        src = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else pil
        out.append(np.asarray(src.resize(thumb.shape[::-1], Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))))
    return np.stack(out).reshape(len(out), -1)


def _pixel_similarity(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    views_a: np.ndarray | None = None,
    views_b: np.ndarray | None = None,
) -> np.ndarray:
    """Best normalised cross-correlation of each thumbnail of a with any crop/mirror view of each of b, and back.
    `views_a`/`views_b`: the thumbnails' unit-row views (N, K, D) when already computed."""
    base_a = _unit_rows(np.stack([t.reshape(-1) for t in a]))
    base_b = _unit_rows(np.stack([t.reshape(-1) for t in b]))
    if views_a is None:
        views_a = np.stack([_unit_rows(_views(t)) for t in a])  # (N, K, D)
    if views_b is None:
        views_b = np.stack([_unit_rows(_views(t)) for t in b])
    k = views_a.shape[1]
    ab = (base_a @ views_b.reshape(len(b) * k, -1).T).reshape(len(a), len(b), k).max(-1)
    ba = (base_b @ views_a.reshape(len(a) * k, -1).T).reshape(len(b), len(a), k).max(-1)
    return np.maximum(ab, ba.T)


def _best_hash_similarity(a: Sequence[Signature], b: Sequence[Signature], kind: str) -> np.ndarray:
    """Whole vs whole and top vs top, each with the mirrored side of a: the best of the four."""
    get = (lambda s: s.phashes) if kind == "phash" else (lambda s: s.dhashes)
    ha = np.array([get(s) for s in a], dtype=np.uint64)
    hb = np.array([get(s) for s in b], dtype=np.uint64)
    pairs = ((0, 0), (1, 0), (2, 2), (3, 2))
    return np.max([hash_similarity(ha[:, i], hb[:, j]) for i, j in pairs], axis=0)


FEATURES = (
    "embedding_cosine",
    "phash_similarity",
    "dhash_similarity",
    "descriptor_cosine",
    "pixel_correlation",
)


def pair_features(a: Sequence[Signature], b: Sequence[Signature]) -> np.ndarray:
    """(len(a), len(b), 5): the FEATURES of every pair (hashes mirror- and caption-aware, pixels crop-aware)."""
    if not a or not b:
        return np.zeros((len(a), len(b), len(FEATURES)))
    emb = normalize(np.stack([s.embedding for s in a])) @ normalize(np.stack([s.embedding for s in b])).T
    if len({s.descriptor.shape for s in (*a, *b)}) == 1:
        desc = (
            normalize(np.stack([s.descriptor for s in a])) @ normalize(np.stack([s.descriptor for s in b])).T
        )
    else:
        # Rows written under CLIP and offline beside each other: the learned cosine stands in (the fitted
        # descriptor weight is 0.02, so this moves the verification logit by less than 0.02).
        desc = emb
    pixels = np.maximum(
        _pixel_similarity(
            [s.thumb for s in a],
            [s.thumb for s in b],
            np.stack([s.views for s in a]),
            np.stack([s.views for s in b]),
        ),
        _pixel_similarity(
            [s.thumb_top for s in a],
            [s.thumb_top for s in b],
            np.stack([s.views_top for s in a]),
            np.stack([s.views_top for s in b]),
        ),
    )
    return np.stack(
        [emb, _best_hash_similarity(a, b, "phash"), _best_hash_similarity(a, b, "dhash"), desc, pixels],
        axis=-1,
    )


def verify_logits(features: np.ndarray) -> np.ndarray:
    """The verification model's log-odds for each pair (unclipped, unlike `verify`'s probability)."""
    return np.asarray(features, dtype=np.float64) @ VERIFY_WEIGHTS + VERIFY_BIAS


def verify(features: np.ndarray) -> np.ndarray:
    """The verification model's probability that each pair is a duplicate (same shape minus the last axis)."""
    z = verify_logits(features)
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _gated_scores(feats: np.ndarray, a: Sequence[Signature], b: Sequence[Signature]) -> np.ndarray:
    if feats.size == 0:
        return np.zeros((len(a), len(b)))
    candidate = (feats[..., 0] >= CANDIDATE_COSINE) | (feats[..., 1] >= CANDIDATE_HASH_SIMILARITY)
    flat_a = np.array([s.flat for s in a])[:, None]
    flat_b = np.array([s.flat for s in b])[None, :]
    return np.where(candidate & ~flat_a & ~flat_b, verify(feats), 0.0)


def duplicate_scores(a: Sequence[Signature], b: Sequence[Signature]) -> np.ndarray:
    """(len(a), len(b)) duplicate probability; 0 for pairs that are not candidates or involve a flat picture."""
    return _gated_scores(pair_features(a, b), a, b)


def image_duplicates(
    ids: Sequence[str], signatures: Sequence[Signature], threshold: float = VERIFY_THRESHOLD
) -> list[tuple[str, str, float]]:
    """Every pair (a < b by position) verified as a duplicate, with its probability."""
    scores = duplicate_scores(signatures, signatures)
    rows, cols = np.nonzero(np.triu(scores >= threshold, k=1))
    return [(ids[int(r)], ids[int(c)], float(scores[r, c])) for r, c in zip(rows, cols, strict=True)]


# Frames compared per shot, on a time grid: one every SHOT_SAMPLE_STEP_S seconds (centred in the shot), at
# least SHOT_SAMPLES_MIN and at most SHOT_SAMPLES_MAX (a longer shot spreads them out). A trimmed copy keeps
# part of a shot from another start, so its samples sit on the original's grid up to one constant offset
# (below half a step): `aligned_score` votes for that offset. Samples at fixed fractions of each shot's
# length (the rule before, still what older stores hold) do not line up once a copy is trimmed: the tuning
# seed's trimmed copies had their second frame pair 1/12 of the shot apart. Step and counts set on the
# bench's tuning seed (`bench/duplicates.py`, BENCHMARKS.md).
SHOT_SAMPLE_STEP_S = 0.25
SHOT_SAMPLES_MIN = 3
SHOT_SAMPLES_MAX = 12
# Frames of one shot that must each verify against the other shot at one time offset (see `shot_score`
# and `aligned_score`). On the bench's tuning seed, two takes of one set reached 0.92 on their best frame
# pair but at most 0.74 on the second.
MATCHED_FRAMES = 2
# Slack on top of the sampling step when grouping frame pairs by offset: the decoder keeps a shot's frames
# at a doubling stride (`media.video`), so a sample can sit a few frames from its grid time.
ALIGN_SLACK_S = 0.12
# At the voted offset each frame is paired with the other shot's frame nearest in time. A copy: nearly
# all those pairs verify, and each aligned pair is the same moment, so it verifies far better than either
# frame does against the other shot's frames at other moments (temporal specificity, below). Two takes of
# one set (same singer, same framing) verify on some pairs at best, and where they verify on all, the
# aligned frame is no better a match than frames a moment away: the take is alike at every offset. On the
# tuning seed copies had 0.92-1.0 of their aligned pairs verified.
ALIGNED_SHARE = 0.85
# Temporal specificity: for each aligned pair (i, j), its verification log-odds minus the best log-odds of
# i against the other shot's frames at least SPECIFIC_GAP_S from the aligned time, or of j likewise (two
# sampling steps, so that a slow shot's next sample, nearly the same picture, does not count); the lower
# quartile over the aligned pairs. On the tuning seed (bench/duplicates.py, seed 7): copies 2.15-7.1 (the
# crop + resize + re-encode copy the motion test missed: 2.49), the takes of one set with every aligned
# pair verified 0.37 (0.40 against a mirrored copy of one), every other look-alike pair at most 0.85;
# the threshold sits between.
# The motion test it replaces (agreement of 8x8 grey differences, >= 0.82) had copies down to 0.78 and
# those takes at 0.80: no threshold separated them.
SPECIFIC_GAP_S = 0.5
SPECIFICITY = 1.5
# Where no frame of either shot lies SPECIFIC_GAP_S from an aligned time (both shots under ~0.75 s),
# there is no specificity to measure and the motion test decides: the pictures change alike from one
# sampled time to the next (median correlation of their 8x8 grey differences, mirror-aware).
MOTION_AGREEMENT = 0.82
# Shots that hardly move (median difference under STILL_LEVEL grey levels) are alike at every offset:
# the verified share decides.
STILL_LEVEL = 4.0


def sample_positions(start_frame: int, end_frame: int, fps: float) -> list[int]:
    """The frames sampled from a shot (end frame included), on the SHOT_SAMPLE_STEP_S grid."""
    n = max(1, end_frame - start_frame + 1)
    step = max(float(fps), 1e-6) * SHOT_SAMPLE_STEP_S  # in frames
    count = int(n // step)
    if not SHOT_SAMPLES_MIN <= count <= SHOT_SAMPLES_MAX:  # too short or too long: evenly spread instead
        count = min(SHOT_SAMPLES_MAX, max(SHOT_SAMPLES_MIN, count))
        step = n / count
    first = (n - step * count) / 2 + step / 2
    return sorted({start_frame + min(n - 1, int(first + step * k)) for k in range(count)})


@dataclass(frozen=True)
class Shot:
    """A shot (or any time span) of one video with the signatures of its sampled frames (keyframe first)."""

    segment_id: str
    asset_id: str
    start: float
    end: float
    frames: tuple[Signature, ...]
    times: tuple[float, ...] = ()  # each frame's time in seconds, when known


@dataclass(frozen=True)
class ShotMatch:
    """A shot of one video found inside another: both segments, both shots' spans, the span each video
    shares with the other (`match_a`, `match_b`: the overlap at the voted time offset; the whole shots where
    frame times are not known), the probability, and the times of the two frames that matched best (None
    where the frames' times are not known)."""

    segment_a: str
    asset_a: str
    span_a: tuple[float, float]
    segment_b: str
    asset_b: str
    span_b: tuple[float, float]
    score: float
    at_a: float | None = None
    at_b: float | None = None
    match_a: tuple[float, float] | None = None
    match_b: tuple[float, float] | None = None


def shot_score(scores: np.ndarray) -> float:
    """How surely two shots are copies, from the duplicate probabilities of their frame pairs (a x b).

    At least MATCHED_FRAMES frames of one shot must each verify against some frame of the other: one
    frame pair alone is too easily two takes of one set (same singer, same framing). Where neither shot
    has that many frames (one-frame shots), the best pair decides."""
    if scores.size == 0:
        return 0.0
    sides = [
        float(np.sort(best)[-MATCHED_FRAMES])
        for best in (scores.max(axis=1), scores.max(axis=0))
        if len(best) >= MATCHED_FRAMES
    ]
    return max(sides) if sides else float(scores.max())


def _spacing(times: np.ndarray) -> float:
    return float(np.median(np.diff(np.sort(times)))) if len(times) > 1 else float("inf")


@dataclass(frozen=True)
class Alignment:
    """The best time offset between two shots' frames: `score` (`shot_score` of the frame pairs at that
    offset), `offset` (seconds to add to a time in the first shot to reach the second; None where the
    frames' times are not known) and the best frame pair (i, j)."""

    score: float
    offset: float | None
    i: int
    j: int


def aligned_score(scores: np.ndarray, times_a: Sequence[float], times_b: Sequence[float]) -> Alignment:
    """`shot_score` of the frame pairs that agree on one time offset (within the coarser shot's sampling
    step plus ALIGN_SLACK_S), the offset that scores best, and its best pair. A copy shows the same
    moments in the same order, so its verified frames share an offset; two takes of one set match at
    scattered offsets. Without times for every frame it is `shot_score` over all pairs."""
    if scores.size == 0:
        return Alignment(0.0, None, 0, 0)
    ta, tb = np.asarray(times_a, dtype=np.float64), np.asarray(times_b, dtype=np.float64)
    if (
        len(ta) != scores.shape[0]
        or len(tb) != scores.shape[1]
        or not (np.isfinite(ta).all() and np.isfinite(tb).all())
    ):
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        return Alignment(shot_score(scores), None, int(i), int(j))
    offsets = tb[None, :] - ta[:, None]
    width = max(_spacing(ta), _spacing(tb)) + ALIGN_SLACK_S
    best = Alignment(-1.0, None, 0, 0)
    for d in np.unique(offsets[scores > 0]) if (scores > 0).any() else [0.0]:
        window = (offsets >= d - 1e-9) & (offsets <= d + width)
        masked = np.where(window, scores, 0.0)
        score = shot_score(masked)
        if score > best.score:
            i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
            strong = window & (scores >= min(score, float(masked.max())))
            best = Alignment(score, float(np.median(offsets[strong])), int(i), int(j))
    return best


def aligned_pairs(a: Shot, b: Shot, offset: float) -> list[tuple[int, int]]:
    """Frame pairs (i of a, j of b) at this time offset: each frame inside the other shot's span (shifted
    by the offset) with the other shot's frame nearest in time, when that is within half the coarser
    sampling step (plus ALIGN_SLACK_S), from both sides, without repeats."""
    ta, tb = np.asarray(a.times, dtype=np.float64), np.asarray(b.times, dtype=np.float64)
    reach = min(max(_spacing(ta), _spacing(tb)), max(a.end - a.start, b.end - b.start)) / 2 + ALIGN_SLACK_S
    pairs: set[tuple[int, int]] = set()
    for i, t in enumerate(ta):
        if b.start - 1e-6 <= t + offset <= b.end + 1e-6:
            j = int(np.argmin(np.abs(tb - (t + offset))))
            if abs(tb[j] - t - offset) <= reach:
                pairs.add((i, j))
    for j, t in enumerate(tb):
        if a.start - 1e-6 <= t - offset <= a.end + 1e-6:
            i = int(np.argmin(np.abs(ta - (t - offset))))
            if abs(ta[i] - t + offset) <= reach:
                pairs.add((i, j))
    return sorted(pairs)


def _coarse(thumb: np.ndarray, flip: bool) -> np.ndarray:
    pil = Image.fromarray(thumb)
    if flip:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(pil.resize((8, 8), Image.Resampling.BOX), dtype=np.float32).ravel()


def motion_agreement(a: Shot, b: Shot, pairs: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """(agreement, level): how alike the two shots' pictures change between aligned times (the median
    correlation of their 8x8 grey differences over steps between two aligned pairs, the better of b as is
    and b mirrored), and how much they change (median grey levels of the lesser of the two; 0 without a
    step). Agreement is 1.0 where there is nothing to compare."""
    # Steps between two aligned pairs that span the same time in both shots (within ALIGN_SLACK_S): where
    # one shot's samples are coarser (older stores), a pair's frames can be a little apart in time.
    ta, tb = a.times, b.times
    steps = [
        (p, q)
        for p, q in itertools.combinations(pairs, 2)
        if p[0] != q[0]
        and p[1] != q[1]
        and abs((tb[q[1]] - tb[p[1]]) - (ta[q[0]] - ta[p[0]])) <= ALIGN_SLACK_S
    ]
    if not steps:
        return 1.0, 0.0
    best, levels = -1.0, []
    for flip in (False, True):
        ca = {i: _coarse(a.frames[i].thumb, False) for i, _ in pairs}
        cb = {j: _coarse(b.frames[j].thumb, flip) for _, j in pairs}
        corr = []
        for (i, j), (i2, j2) in steps:
            da, db = ca[i2] - ca[i], cb[j2] - cb[j]
            if not flip:
                levels.append(min(np.linalg.norm(da), np.linalg.norm(db)) / 8.0)
            da, db = da - da.mean(), db - db.mean()
            corr.append(float(da @ db / max(1e-6, float(np.linalg.norm(da) * np.linalg.norm(db)))))
        best = max(best, float(np.median(corr)))
    return best, float(np.median(levels))


def temporal_specificity(
    a: Shot, b: Shot, pairs: Sequence[tuple[int, int]], offset: float, logits: np.ndarray
) -> float | None:
    """How much better each aligned frame pair verifies than its frames do against the other shot at
    other moments: per pair (i, j), its log-odds minus the best log-odds of i with a frame of b at least
    SPECIFIC_GAP_S from i's aligned time, or of a frame of a that far with j; the lower quartile over
    the pairs. None where no pair has such a frame to compare with."""
    ta, tb = np.asarray(a.times, dtype=np.float64), np.asarray(b.times, dtype=np.float64)
    margins = []
    for i, j in pairs:
        far_b = np.abs(tb - (ta[i] + offset)) >= SPECIFIC_GAP_S
        far_a = np.abs(ta - (tb[j] - offset)) >= SPECIFIC_GAP_S
        others = np.concatenate([logits[i, far_b], logits[far_a, j]])
        if others.size:
            margins.append(float(logits[i, j] - others.max()))
    return float(np.quantile(margins, 0.25)) if margins else None


def match_shots(
    a: Shot,
    b: Shot,
    scores: np.ndarray | None = None,
    threshold: float = VERIFY_THRESHOLD,
    logits: np.ndarray | None = None,
) -> ShotMatch | None:
    """The two shots as a `ShotMatch` (a before b by asset and start) when their aligned frames verify
    (`aligned_score` >= threshold), else None; `scores` and `logits` are their frames' duplicate
    probabilities and verification log-odds when already computed (both or neither)."""
    if scores is None or logits is None:
        feats = pair_features(a.frames, b.frames)
        scores, logits = _gated_scores(feats, a.frames, b.frames), verify_logits(feats)
    if scores.size == 0 or scores.max() < threshold:
        return None
    al = aligned_score(scores, a.times, b.times)
    if al.score < threshold:
        return None
    score = al.score
    if al.offset is not None:
        pairs = aligned_pairs(a, b, al.offset)
        if len(pairs) < MATCHED_FRAMES:
            return None
        probs = np.array([scores[i, j] for i, j in pairs])
        if float(np.mean(probs >= threshold)) < ALIGNED_SHARE:
            return None
        agreement, level = motion_agreement(a, b, pairs)
        if level >= STILL_LEVEL:
            specificity = temporal_specificity(a, b, pairs, al.offset, logits)
            if specificity is None and agreement < MOTION_AGREEMENT:
                return None
            if specificity is not None and specificity < SPECIFICITY:
                return None
        score = float(np.median(probs))
    i, j, offset = al.i, al.j, al.offset
    if (a.asset_id, a.start) > (b.asset_id, b.start):
        a, b, i, j = b, a, j, i
        offset = -offset if offset is not None else None
    if offset is None:
        match_a, match_b = (a.start, a.end), (b.start, b.end)
    else:
        lo, hi = max(a.start, b.start - offset), min(a.end, b.end - offset)
        if hi <= lo:  # the voted offset puts the shots just apart (matched frames at their edges)
            match_a, match_b = (a.start, a.end), (b.start, b.end)
        else:
            match_a = (round(lo, 3), round(hi, 3))
            match_b = (round(lo + offset, 3), round(hi + offset, 3))
    return ShotMatch(
        a.segment_id,
        a.asset_id,
        (a.start, a.end),
        b.segment_id,
        b.asset_id,
        (b.start, b.end),
        score,
        a.times[i] if len(a.times) > i else None,
        b.times[j] if len(b.times) > j else None,
        match_a,
        match_b,
    )


def shot_duplicates(shots: Sequence[Shot], threshold: float = VERIFY_THRESHOLD) -> list[ShotMatch]:
    """Shots copied across videos (never within one video; flat frames such as black intros never match),
    by `match_shots`."""
    if len(shots) < 2:
        return []
    frames = [f for s in shots for f in s.frames]
    feats = pair_features(frames, frames)
    scores, logits = _gated_scores(feats, frames, frames), verify_logits(feats)
    offsets = np.concatenate([[0], np.cumsum([len(s.frames) for s in shots])]).astype(int)
    out = []
    for r, c in itertools.combinations(range(len(shots)), 2):
        if shots[r].asset_id == shots[c].asset_id:
            continue
        block = scores[offsets[r] : offsets[r + 1], offsets[c] : offsets[c + 1]]
        if block.size == 0 or block.max() < threshold:
            continue
        rows, cols = slice(offsets[r], offsets[r + 1]), slice(offsets[c], offsets[c + 1])
        match = match_shots(shots[r], shots[c], block, threshold, logits[rows, cols])
        if match is not None:
            out.append(match)
    return sorted(out, key=lambda m: (m.asset_a, m.asset_b, m.span_a, m.span_b))


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
