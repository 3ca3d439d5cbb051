"""The UDF of the Pixeltable side of the peer bench (Pixeltable stores UDFs by module, not by script)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pixeltable as pxt

HISTOGRAM_BINS = 8  # per channel: an 8x8x8 colour histogram, 512 values


@pxt.udf
def colour_histogram(img: PIL.Image.Image) -> pxt.Array[(HISTOGRAM_BINS**3,), pxt.Float]:
    """A normalised RGB histogram of a 64x64 copy: the image embedding Pixeltable can do offline."""
    small = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.int64) * HISTOGRAM_BINS // 256
    codes = (small[..., 0] * HISTOGRAM_BINS + small[..., 1]) * HISTOGRAM_BINS + small[..., 2]
    hist = np.bincount(codes.ravel(), minlength=HISTOGRAM_BINS**3).astype(np.float32)
    return hist / np.linalg.norm(hist)
