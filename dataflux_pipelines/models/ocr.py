"""Text in pictures: RapidOCR (PP-OCRv4 detection + recognition, ONNX models inside the
`rapidocr-onnxruntime` wheel), with a cheap text-presence check first.

The presence check runs only the detection network, on the picture scaled to `PRESENCE_SIDE` pixels,
and looks at its text-probability map; a picture whose map has no confident text pixels skips the
full-resolution detection, the angle classifier and the recogniser (most of the cost).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PRESENCE_SIDE = 480  # long side of the presence check's input (a multiple of 32)
# A pixel counts as text when the detector's probability exceeds this (the library's own `thresh`)...
PRESENCE_PIXEL = 0.3
# ...and a picture has text when at least this share of the check's pixels do and one is confident.
# Set before measuring; on bench/ocr.py's tuning seed they skipped every text-free picture and no
# picture with text (see BENCHMARKS.md).
PRESENCE_AREA = 0.0004
PRESENCE_PEAK = 0.7
MIN_LINE_SCORE = 0.5  # the library's default `text_score`
# Pictures with a shorter long side are upscaled (bicubic) before recognition: on 512-px video frames
# the recogniser ran the words of 17-px text together ("Welcometothelaunch"); at 2x it read the spaces.
# 960 (1.875x) was borderline: on an AVX-512 host onnxruntime's kernels still read "thelaunch" there.
# bench/ocr.py, 512-px video frames, 960 -> 1024: tuning seed char accuracy 0.981 -> 0.991, line recall
# 0.926 -> 0.963; held-out seed unchanged (0.994, 0.955); s/picture within the run's noise.
MIN_LONG_SIDE = 1024


@dataclass
class TextLine:
    text: str
    box: list[list[float]]  # four (x, y) corners in the input picture's pixels, clockwise from top-left
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "box": [[round(float(x), 1), round(float(y), 1)] for x, y in self.box],
            "confidence": round(self.confidence, 4),
        }


@dataclass
class Recognised:
    """What OCR found in one picture; `checked_only` when the presence check skipped recognition."""

    lines: list[TextLine]
    presence: float
    checked_only: bool

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def rapidocr_model_dir() -> Path:
    """The folder of PP-OCRv4 ONNX models inside the installed `rapidocr-onnxruntime` package."""
    try:
        import rapidocr_onnxruntime
    except ImportError as exc:
        raise ImportError(
            "on-screen text needs the `rapidocr-onnxruntime` package (PP-OCRv4 ONNX models); "
            "install the project's dependencies (`make setup`)"
        ) from exc
    folder = Path(rapidocr_onnxruntime.__file__).parent / "models"
    if not (folder / "ch_PP-OCRv4_det_infer.onnx").is_file():
        raise OSError(f"the rapidocr-onnxruntime package has no PP-OCRv4 models at {folder}")
    return folder


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.onnx")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
        with path.open("rb") as f:
            digest.update(f.read(1 << 16))
    return digest.hexdigest()[:12]


def cuda_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


class RapidOCREngine:
    """PP-OCRv4 loaded once per process; CUDA execution provider when onnxruntime offers it."""

    def __init__(
        self, folder: Path | str, device: str = "cpu", batch_size: int = 6, threads: int = 2
    ) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.folder = Path(folder)
        use_cuda = str(device).startswith("cuda") and cuda_available()
        self.device = "cuda" if use_cuda else "cpu"
        self.precision = "float32"
        self.batch_size = batch_size
        self.engine = RapidOCR(
            det_use_cuda=use_cuda,
            cls_use_cuda=use_cuda,
            rec_use_cuda=use_cuda,
            rec_batch_num=batch_size,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )
        self.version = (
            f"pp-ocrv4@rapidocr-onnxruntime=={importlib.metadata.version('rapidocr-onnxruntime')}"
            f"#{_digest(self.folder)}"
        )

    def presence(self, rgb: np.ndarray) -> float:
        """Share of the check's pixels the detector calls text (0 when none is confident)."""
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

        bgr = np.ascontiguousarray(rgb[..., :3][..., ::-1])
        det = self.engine.text_det
        batch = DetPreProcess(PRESENCE_SIDE, "max", det.mean, det.std)(bgr)
        if batch is None:
            return 0.0
        prob = det.infer(batch)[0][0, 0]
        if float(prob.max()) < PRESENCE_PEAK:
            return 0.0
        return float((prob > PRESENCE_PIXEL).mean())

    def recognise(self, images: Sequence[np.ndarray], check: bool = True) -> list[Recognised]:
        """Lines (text, box, confidence) of each RGB picture, top to bottom; pictures the presence check
        rejects cost one small detection pass and return no lines."""
        out = []
        for rgb in images:
            score = self.presence(rgb) if check else 1.0
            if check and score < PRESENCE_AREA:
                out.append(Recognised([], score, True))
                continue
            scale = _upscale(rgb)
            picture = rgb if scale == 1 else _resized(rgb, scale)
            result, _ = self.engine(np.ascontiguousarray(picture[..., :3][..., ::-1]))
            lines = [
                TextLine(str(text).strip(), [[p[0] / scale, p[1] / scale] for p in box], float(conf))
                for box, text, conf in (result or [])
                if str(text).strip() and float(conf) >= MIN_LINE_SCORE
            ]
            out.append(Recognised(lines, score, False))
        return out


def _upscale(rgb: np.ndarray) -> float:
    side = max(rgb.shape[:2])
    return 1.0 if side >= MIN_LONG_SIDE else MIN_LONG_SIDE / max(1, side)


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    return np.asarray(img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC))
