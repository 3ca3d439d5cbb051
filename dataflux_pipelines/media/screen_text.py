"""Which pictures are read for text, and how what is read becomes text segments.

Video: one picture per shot, plus a picture wherever the frame changes within a shot (a slide deck
recorded as one long shot shows a new slide without a cut). `ChangeSampler` watches the decoded frames
(a 32x18 grey preview every `CHECK_EVERY_S`) and captures a frame once a change has settled; each shot
is read at its captures, or at its keyframe when nothing was captured in it. Images: the picture itself,
at up to `IMAGE_SIDE` pixels. PDF pages without a text layer (scans): the page's embedded images.
Consecutive pictures of one shot that read the same text become one segment spanning both.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from dataflux_pipelines.media.types import TextFrame

CHECK_EVERY_S = 0.25
PREVIEW = (64, 36)
# Previews are compared by the share of their pixels whose grey level moved by more than PIXEL_DELTA:
# a new line of text on a slide moves ~0.7 % of a 64x36 preview, sensor noise (sigma 8) none.
PIXEL_DELTA = 16.0
CHANGE_SHARE = 0.004  # this share moved since the last capture: a new picture
SETTLE_SHARE = 0.002  # less than this moved since the previous check: the picture holds still
MAX_CAPTURES = 600  # per video: bounds memory (each capture is one JPEG) and OCR time
IMAGE_SIDE = 1600  # long side an image is read at: small print survives, huge scans stay affordable
SCAN_SIDE = 2000
FRAME_JPEG_QUALITY = 90
_SPACE = re.compile(r"\s+")


def _preview(rgb: np.ndarray) -> np.ndarray:
    img = (
        Image.fromarray(np.ascontiguousarray(rgb[..., :3])).convert("L").resize(PREVIEW, Image.Resampling.BOX)
    )
    return np.asarray(img, dtype=np.float32)


def _moved(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b) > PIXEL_DELTA).mean())


def encode_picture(rgb: np.ndarray, max_side: int) -> bytes:
    """A JPEG of the picture with its long side at most `max_side` (what crosses the worker pipe)."""
    img = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    if max(img.size) > max_side:
        # Area averaging (BOX), not Lanczos: for 1920x1080 photos read at 1600 px Lanczos cost 47-57 ms
        # of an image's ~115 ms analysis here, BOX 19 ms, and PP-OCRv4 read the same characters from
        # both (24 generated slides and sign photos at 1920x1080, unseen seed: accuracy 0.9926 against
        # 0.9923 with Lanczos, 0.9907 unscaled).
        img.thumbnail((max_side, max_side), Image.Resampling.BOX)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=FRAME_JPEG_QUALITY)
    return out.getvalue()


def decode_picture(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@dataclass
class Capture:
    frame: int
    changed_at: int  # the frame where the change was first seen (the new picture's start)
    jpeg: bytes


class ChangeSampler:
    """Captures a frame wherever the picture changes and then holds still (bounded by MAX_CAPTURES)."""

    def __init__(self, fps: float, max_side: int = 960) -> None:
        self.every = max(1, round(CHECK_EVERY_S * (fps or 25.0)))
        self.max_side = max_side
        self.captures: list[Capture] = []
        self._reference: np.ndarray | None = None  # preview of the last capture
        self._previous: np.ndarray | None = None  # preview of the last check
        self._changed_at: int | None = 0  # first frame of a change not captured yet
        self.dropped = 0

    def offer(self, index: int, rgb: np.ndarray) -> None:
        if index % self.every:
            return
        preview = _preview(rgb)
        reference_moved = self._reference is not None and _moved(preview, self._reference) >= CHANGE_SHARE
        if self._changed_at is None and reference_moved:
            self._changed_at = index
        settled = self._previous is not None and _moved(preview, self._previous) < SETTLE_SHARE
        if self._changed_at is not None and (settled or self._reference is None):
            if len(self.captures) < MAX_CAPTURES:
                self.captures.append(Capture(index, self._changed_at, encode_picture(rgb, self.max_side)))
            else:
                self.dropped += 1
            self._reference = preview
            self._changed_at = None
        self._previous = preview


def shot_text_frames(
    shots: Sequence[tuple[int, int, float, float]],
    captures: Sequence[Capture],
    keyframes: Sequence[tuple[int, bytes]],
    fps: float,
) -> list[TextFrame]:
    """Pictures to read per shot (start/end frame and time): its captures, else its keyframe.

    A capture covers from its change (or the shot's start, for the first one) to the next capture or
    the shot's end, so the text segment's span is when that picture is on screen."""
    out: list[TextFrame] = []
    k = 0
    for number, ((first, last, start, end), (key_index, key_jpeg)) in enumerate(
        zip(shots, keyframes, strict=True)
    ):
        inside = []
        while k < len(captures) and captures[k].frame <= last:
            if captures[k].frame >= first:
                inside.append(captures[k])
            k += 1
        if not inside:
            out.append(TextFrame(key_jpeg, start, end, key_index, shot=number))
            continue
        for j, cap in enumerate(inside):
            begin = start if j == 0 else max(start, cap.changed_at / fps)
            finish = end if j + 1 == len(inside) else max(begin, inside[j + 1].changed_at / fps)
            out.append(TextFrame(cap.jpeg, round(begin, 3), round(finish, 3), cap.frame, shot=number))
    return out


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


@dataclass
class TextRecord:
    """One text segment: what was read in one picture (or several consecutive ones that agree)."""

    text: str
    lines: list[dict[str, Any]]
    confidence: float
    start_time: float | None = None
    end_time: float | None = None
    frame: int | None = None
    page: int | None = None
    shot: int | None = None
    pictures: int = 1
    sources: list[int] = field(default_factory=list)


def text_records(frames: Sequence[TextFrame], recognised: Sequence[Any]) -> list[TextRecord]:
    """Text segments from pictures and what OCR read in them; same-text neighbours in a shot merge."""
    out: list[TextRecord] = []
    for i, (frame, result) in enumerate(zip(frames, recognised, strict=True)):
        if not result.lines:
            continue
        text = result.text
        lines = [line.to_json() for line in result.lines]
        confidence = float(np.mean([line.confidence for line in result.lines]))
        last = out[-1] if out else None
        if (
            last is not None
            and frame.shot is not None
            and last.shot == frame.shot
            and frame.page is None
            and normalise(last.text) == normalise(text)
        ):
            last.end_time = frame.end_time
            last.pictures += 1
            last.sources.append(i)
            continue
        out.append(
            TextRecord(
                text=text,
                lines=lines,
                confidence=round(confidence, 4),
                start_time=frame.start_time,
                end_time=frame.end_time,
                frame=frame.frame,
                page=frame.page,
                shot=frame.shot,
                sources=[i],
            )
        )
    return out


MIN_SCAN_IMAGE_SIDE = 200  # smaller embedded images are logos and icons, not scanned pages


def page_scan_images(page: Any, page_number: int, max_images: int = 4) -> list[TextFrame]:
    """The embedded images of a PDF page with no text layer, largest first, as pictures to read."""
    found: list[tuple[int, np.ndarray]] = []
    for image in list(page.images)[: max_images * 4]:
        try:
            pil = image.image
            if pil is None:
                continue
            rgb = np.asarray(pil.convert("RGB"))
        except Exception:  # pypdf raises many types for unusual filters; such an image is not read
            continue
        if min(rgb.shape[:2]) < MIN_SCAN_IMAGE_SIDE:
            continue
        found.append((rgb.shape[0] * rgb.shape[1], rgb))
    found.sort(key=lambda item: -item[0])
    return [TextFrame(encode_picture(rgb, SCAN_SIDE), page=page_number) for _, rgb in found[:max_images]]
