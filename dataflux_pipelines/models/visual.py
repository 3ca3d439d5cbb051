"""The `visual-offline` descriptor: colour layout and texture, with no learned weights.

Used when CLIP cannot be loaded. It is not semantic; it finds the same picture again
(resized, re-encoded, slightly cropped) and pictures that look alike in colour and texture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from dataflux_pipelines.models.loading import ModelProfile

VISUAL_OFFLINE_SPACE = "visual-offline"
# Bump when the descriptor changes: every stored vector of this space becomes stale.
VISUAL_OFFLINE_VERSION = "visual-offline/v1 lab4x4x4+grad8 pyramid1-2-4 +lbp10 pyramid1-2 96px"

_SIDE = 96  # working resolution: large enough for texture, small enough to be cheap
_L_BINS, _A_BINS, _B_BINS = 4, 4, 4
_ORIENT_BINS = 8
_LBP_BINS = 10  # rotation-invariant uniform patterns (9) + "non-uniform"
_COLOUR_LEVELS = (1, 2, 4)
_GRADIENT_LEVELS = (1, 2, 4)
_LBP_LEVELS = (1, 2)
# The three groups weigh the same whatever their bin counts.
_GROUP_WEIGHTS = {"colour": 1.0, "gradient": 0.8, "lbp": 0.6}


def _blocks(levels: Sequence[int]) -> int:
    return sum(n * n for n in levels)


VISUAL_OFFLINE_DIM = (
    _blocks(_COLOUR_LEVELS) * _L_BINS * _A_BINS * _B_BINS
    + _blocks(_GRADIENT_LEVELS) * _ORIENT_BINS
    + _blocks(_LBP_LEVELS) * _LBP_BINS
)


def _to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[2] < 3:
            raise ValueError(f"expected an RGB array (H, W, 3), got shape {image.shape}")
        pil = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")
    else:
        pil = image.convert("RGB")
    # Box filter is an area average: what a resized copy of the same picture converges to.
    pil = pil.resize((_SIDE, _SIDE), Image.Resampling.BOX)
    return np.asarray(pil, dtype=np.float32) / 255.0


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELab (D65) from sRGB in [0, 1]; L in [0, 100], a/b roughly in [-110, 110]."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ],
        dtype=np.float32,
    )
    xyz = linear @ m.T
    xyz /= np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    eps = 216 / 24389
    f = np.where(xyz > eps, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lab = np.empty_like(xyz)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _soft_bins(values: np.ndarray, low: float, high: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation between neighbouring bin centres, so a value near a bin edge
    (JPEG noise, a resize) moves weight gradually instead of jumping bins."""
    pos = (np.clip(values, low, high) - low) / (high - low) * bins - 0.5
    lower = np.floor(pos)
    frac = pos - lower
    lower = lower.astype(np.int64)
    return np.stack([np.clip(lower, 0, bins - 1), np.clip(lower + 1, 0, bins - 1)]), np.stack(
        [1.0 - frac, frac]
    )


def _colour_codes(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the 8 (L, a, b) bin indices and weights of a trilinear soft histogram."""
    li, lw = _soft_bins(lab[..., 0], 0.0, 100.0, _L_BINS)
    ai, aw = _soft_bins(lab[..., 1], -60.0, 60.0, _A_BINS)
    bi, bw = _soft_bins(lab[..., 2], -60.0, 60.0, _B_BINS)
    codes, weights = [], []
    for x in range(2):
        for y in range(2):
            for z in range(2):
                codes.append((li[x] * _A_BINS + ai[y]) * _B_BINS + bi[z])
                weights.append(lw[x] * aw[y] * bw[z])
    return np.stack(codes), np.stack(weights)


def _orientation_codes(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned gradient orientation, soft-binned, weighted by magnitude."""
    gy, gx = np.gradient(gray)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    pos = angle / np.pi * _ORIENT_BINS - 0.5
    lower = np.floor(pos)
    frac = pos - lower
    lower = lower.astype(np.int64) % _ORIENT_BINS
    upper = (lower + 1) % _ORIENT_BINS
    return np.stack([lower, upper]), np.stack([magnitude * (1 - frac), magnitude * frac])


def _lbp_codes(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform local binary patterns (8 neighbours, radius 1): 0..9."""
    centre = gray[1:-1, 1:-1]
    h, w = gray.shape
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    bits = np.stack(
        [gray[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= centre + 1.0 / 255 for dy, dx in offsets]
    ).astype(np.int64)
    transitions = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(axis=0)
    ones = bits.sum(axis=0)
    codes = np.where(transitions <= 2, ones, _LBP_BINS - 1)
    return np.pad(codes, 1, mode="edge")


def _pyramid(codes: np.ndarray, weights: np.ndarray | None, bins: int, levels: Sequence[int]) -> np.ndarray:
    """Histograms of (possibly soft) codes over a spatial pyramid, each block normalised to sum 1."""
    side = codes.shape[-1]
    if codes.ndim == 2:
        codes = codes[None]
        weights = np.ones_like(codes, dtype=np.float32) if weights is None else weights[None]
    assert weights is not None
    out = []
    for n in levels:
        edges = np.linspace(0, side, n + 1).astype(int)
        for r in range(n):
            for c in range(n):
                block_codes = codes[:, edges[r] : edges[r + 1], edges[c] : edges[c + 1]].ravel()
                block_w = weights[:, edges[r] : edges[r + 1], edges[c] : edges[c + 1]].ravel()
                hist = np.bincount(block_codes, weights=block_w, minlength=bins).astype(np.float64)
                total = hist.sum()
                out.append(hist / total if total > 0 else hist)
    return np.concatenate(out)


def _group(hist: np.ndarray, weight: float) -> np.ndarray:
    # sqrt (Hellinger) keeps one dominant bin from swamping the rest; then unit length per group.
    rooted = np.sqrt(hist)
    norm = np.linalg.norm(rooted)
    return (rooted / norm if norm > 0 else rooted) * weight


def describe_image(image: Image.Image | np.ndarray) -> np.ndarray:
    """The descriptor of one picture: float32 (VISUAL_OFFLINE_DIM,), unit length, deterministic."""
    rgb = _to_rgb_array(image)
    lab = _srgb_to_lab(rgb)
    gray = lab[..., 0] / 100.0
    c_codes, c_weights = _colour_codes(lab)
    o_codes, o_weights = _orientation_codes(gray)
    colour = _pyramid(c_codes, c_weights, _L_BINS * _A_BINS * _B_BINS, _COLOUR_LEVELS)
    gradient = _pyramid(o_codes, o_weights, _ORIENT_BINS, _GRADIENT_LEVELS)
    lbp = _pyramid(_lbp_codes(gray), None, _LBP_BINS, _LBP_LEVELS)
    vector = np.concatenate(
        [
            _group(colour, _GROUP_WEIGHTS["colour"]),
            _group(gradient, _GROUP_WEIGHTS["gradient"]),
            _group(lbp, _GROUP_WEIGHTS["lbp"]),
        ]
    )
    norm = np.linalg.norm(vector)
    if norm > 0:
        vector = vector / norm
    return vector.astype(np.float32)


def describe_images(images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
    """Descriptors of several pictures: float32 (N, VISUAL_OFFLINE_DIM)."""
    if not images:
        return np.zeros((0, VISUAL_OFFLINE_DIM), dtype=np.float32)
    return np.stack([describe_image(img) for img in images])


def measure_pixels(image: Image.Image | np.ndarray) -> dict[str, float]:
    """Brightness (0..1) and colourfulness (Hasler–Süsstrunk, 0..~150) of a picture, for concepts."""
    rgb = _to_rgb_array(image) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luminance = (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(np.abs(rg.mean()), np.abs(yb.mean())))
    return {"brightness": float(luminance.mean()), "colorfulness": colourfulness}


class OfflineVisualEncoder:
    """The non-learned `visual-offline` descriptor behind the same interface as CLIP's image tower."""

    dim = VISUAL_OFFLINE_DIM
    space = VISUAL_OFFLINE_SPACE
    version = VISUAL_OFFLINE_VERSION

    def __init__(self, profile: ModelProfile) -> None:
        self.profile = profile

    def embed_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        return describe_images(list(images))
