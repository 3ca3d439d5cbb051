"""Edits that make near-duplicate copies of a picture, and precision/recall of a duplicate rule.

Used by the duplicate tests and by `bench/duplicates.py` (which puts tests/ on sys.path); the product
module `dataflux_pipelines.duplicates` only finds duplicates, it never makes them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from dataflux_pipelines.duplicates import mirror, normalize

__all__ = [
    "colour_shift",
    "crop",
    "duplicate_pairs",
    "mirror",
    "near_duplicate_variants",
    "overlay_text",
    "precision_recall",
    "reencode",
    "resize",
]


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


def colour_shift(
    image: Image.Image, brightness: float = 1.15, saturation: float = 0.8, warm: int = 12
) -> Image.Image:
    """Brighter or darker, less or more saturated, and warmer (red up, blue down)."""
    out = ImageEnhance.Color(ImageEnhance.Brightness(image.convert("RGB")).enhance(brightness)).enhance(
        saturation
    )
    arr = np.asarray(out, dtype=np.int16).copy()
    arr[..., 0] += warm
    arr[..., 2] -= warm
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def overlay_text(image: Image.Image, text: str = "BREAKING NEWS  12:04") -> Image.Image:
    """A caption bar over the bottom sixth, as broadcasters and re-uploaders add."""
    out = image.convert("RGB").copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, h - h // 6, w, h), fill=(20, 20, 120))
    draw.text((w // 20, h - h // 6 + h // 40), text, fill=(255, 255, 255), font_size=max(8, h // 12))
    return out


def near_duplicate_variants(image: Image.Image) -> dict[str, Image.Image]:
    """The edits a near-duplicate must survive: re-encode, resize, 10% crop, and all three together."""
    return {
        "reencode_q35": reencode(image, 35),
        "resize_50": resize(image, 0.5),
        "crop_10": crop(image, 0.10),
        "crop_resize_reencode": reencode(resize(crop(image, 0.10), 0.6), 50),
    }


def duplicate_pairs(
    vectors_a: np.ndarray,
    ids_a: Sequence[str],
    vectors_b: np.ndarray,
    ids_b: Sequence[str],
    threshold: float,
) -> list[tuple[str, str, float]]:
    """Every (a, b, cosine) with cosine >= threshold; exact, for small sets."""
    if len(ids_a) == 0 or len(ids_b) == 0:
        return []
    sims = normalize(vectors_a) @ normalize(vectors_b).T
    rows, cols = np.nonzero(sims >= threshold)
    return [(ids_a[int(r)], ids_b[int(c)], float(sims[r, c])) for r, c in zip(rows, cols, strict=True)]


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
