"""Shot boundary detection: cuts, dissolves and fades from streamed frame batches, with torch on any device."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dataflux_pipelines.errors import MediaError, Reason

# Analysis geometry. Frames are reduced to ANALYSIS_SIZE (w, h); structure is compared on a
# half-size luma grid with a +-SHIFT pixel search so that camera and object motion are absorbed.
ANALYSIS_SIZE = (64, 36)
SHIFT = 3
PAIR_LAGS = 4  # distances d(t-k, t), k = 1..4: flashes of up to 3 frames return to the old content
HALF_WIDTHS = (5, 8, 12, 18, 24)  # dissolve windows (half-widths in frames) tried at each centre
GRAM_LAG = 2 * max(HALF_WIDTHS)
CUT_FLOOR = 0.35  # the adaptive cut threshold never goes below this
SPIKE_FLOOR = 0.3  # one-step change below this can never be a cut (below CUT_FLOOR)
MEDIAN_RADIUS = 40  # frames either side for the adaptive (median + k*MAD) threshold
# Decisions for frame t need scores up to t + MARGIN; everything older than that is final.
MARGIN = 128
R_MAX = 0.2  # largest relative residual of a linear-blend fit accepted as a dissolve
DIP_R_MAX, DIP_MAX = 0.25, 0.85  # looser fit accepted when fine detail dips mid-window


@dataclass
class Shot:
    """One shot: inclusive frame range and its time span in seconds."""

    start_frame: int
    end_frame: int
    start: float
    end: float
    motion: float = 0.0  # mean motion-compensated change per frame (not part of the JSON shape)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class Transition:
    """A boundary between shots: a cut (one frame, the first of the new shot) or a gradual range."""

    type: str  # "cut" | "dissolve" | "fade"
    start_frame: int
    end_frame: int
    confidence: float

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "confidence": round(float(self.confidence), 4),
        }


@dataclass
class ShotDetection:
    """Shots and transitions of one video."""

    fps: float
    frames: int
    shots: list[Shot] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    # Which detector produced this ("classical", "fused", "learned") and, after a fallback, why.
    detector: str = "classical"
    fallback_reason: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "fps": float(self.fps),
            "frames": int(self.frames),
            "shots": [s.to_json_dict() for s in self.shots],
            "transitions": [t.to_json_dict() for t in self.transitions],
        }


def _as_float_frames(
    batch: np.ndarray | torch.Tensor, device: torch.device, size: tuple[int, int]
) -> torch.Tensor:
    """NHWC uint8 frames -> N,3,h,w float in [0, 1] at the analysis size."""
    x = torch.as_tensor(batch).to(device)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected N,H,W,3 frames, got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    w, h = size
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="area")
    return x


class _Features:
    """Per-frame features of a batch, kept only for the few dozen frames the scores look back over."""

    def __init__(self, x: torch.Tensor) -> None:
        luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        self.mean = luma.mean(dim=(1, 2))
        self.std = luma.std(dim=(1, 2))
        half = F.avg_pool2d(luma.unsqueeze(1), 2).squeeze(1)
        # Brightness/contrast-normalised structure: a flash (blend towards white) or a fade barely changes it.
        mu = half.mean(dim=(1, 2), keepdim=True)
        sd = half.std(dim=(1, 2), keepdim=True)
        self.struct = (half - mu) / (sd + 0.02)
        q = (x * 3.999).long()
        idx = (q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]).flatten(1)
        hist = torch.zeros(x.shape[0], 64, device=x.device)
        hist.scatter_add_(1, idx, torch.ones_like(idx, dtype=hist.dtype))
        self.hist = hist / idx.shape[1]
        # Blend-model vector: colour layout plus half-size luma, so a blend of two textures (lower
        # contrast) cannot be mistaken for a moved copy of one.
        tiny = F.avg_pool2d(x, 4).flatten(1)
        self.vec = torch.cat([tiny, half.flatten(1)], dim=1)
        self.half = half
        # Fine detail (high-pass energy): a blend of two unrelated images loses it mid-way, a pan does not.
        self.detail = (
            (half - F.avg_pool2d(half.unsqueeze(1), 3, 1, 1, count_include_pad=False).squeeze(1))
            .abs()
            .mean(dim=(1, 2))
        )

    @staticmethod
    def cat(parts: list[_Features]) -> _Features:
        out = object.__new__(_Features)
        for name in ("mean", "std", "struct", "hist", "vec", "half", "detail"):
            setattr(out, name, torch.cat([getattr(p, name) for p in parts]))
        return out

    def tail(self, n: int) -> _Features:
        out = object.__new__(_Features)
        for name in ("mean", "std", "struct", "hist", "vec", "half", "detail"):
            setattr(out, name, getattr(self, name)[-n:])
        return out

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def _structure_distance(a: torch.Tensor, b: torch.Tensor, shift: int) -> torch.Tensor:
    """Block-wise motion-tolerant distance between normalised luma maps a[i] and b[i] (N,h,w) -> (N,)."""
    n, h, w = a.shape
    k = 2 * shift + 1
    pad = F.pad(a.unsqueeze(1), (shift, shift, shift, shift), mode="replicate").squeeze(1).contiguous()
    bh, bw = h // 3, w // 4
    best = None
    for dy in range(k):
        rows = pad[:, dy : dy + h]
        sn, sh, sw = rows.stride()
        # The k horizontal shifts of this row band as one strided view (N, k, h, w), no copy;
        # one vertical shift at a time keeps the working set in cache (2x faster than all at once).
        shifted = rows.as_strided((n, k, h, w), (sn, sw, sh, sw))
        diff = (shifted - b[:, None]).abs_()
        blocks = diff.reshape(n, k, 3, bh, 4, bw).sum(dim=(3, 5)).amin(dim=1)
        best = blocks if best is None else torch.minimum(best, blocks)
    assert best is not None
    best = best.flatten(1) / (bh * bw)
    # Drop the two worst blocks: an object entering the frame changes a corner, not the shot.
    return best.sort(dim=1).values[:, :-2].mean(dim=1)


class _Scores:
    """Per-frame scalar scores (numpy, float32) for a contiguous range of frames starting at `base`."""

    names = (
        "mean",
        "std",
        "motion",
        "hist",
        "struct",
        "pair",
        "fit_e",
        "fit_r",
        "fit_lin",
        "fit_lo",
        "fit_hi",
    )

    def __init__(self) -> None:
        self.base = 0
        self.data: dict[str, np.ndarray] = {}

    def append(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.data[k] = v if k not in self.data else np.concatenate([self.data[k], v])

    def drop_before(self, frame: int) -> None:
        cut = frame - self.base
        if cut <= 0:
            return
        for k in self.data:
            self.data[k] = self.data[k][cut:]
        self.base = frame


class ShotDetector:
    """Streaming shot detector: push NHWC uint8 batches, collect transitions as they become final."""

    def __init__(
        self, fps: float, *, device: str = "cpu", analysis_size: tuple[int, int] = ANALYSIS_SIZE
    ) -> None:
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.device = torch.device(device)
        self.size = analysis_size
        self.frames = 0
        self._tail: _Features | None = None
        self._spiky_tail: torch.Tensor | None = None  # one-step change above SPIKE_FLOOR, tail frames
        self._gram_tail: torch.Tensor | None = None  # rows of the banded Gram matrix for the tail frames
        self._fit_next = 0  # next centre whose dissolve fits have not been computed
        self._scores = _Scores()
        self._final_upto = 0  # transitions anchored before this frame are final
        self._emitted: list[Transition] = []
        self._shots: list[Shot] = []
        self._shot_start = 0
        self._motion_sum = 0.0
        self._motion_from = 0  # motion accumulated into _motion_sum for frames before this
        # Per-frame evidence kept for the fused detector (a few floats a frame, for the whole video).
        self.record_evidence = False
        self._evidence: dict[str, list[np.ndarray]] = {
            "pair": [],
            "motion": [],
            "mean": [],
            "std": [],
            "hist": [],
        }

    @property
    def closed_shots(self) -> list[Shot]:
        """Shots whose end is final so far (the last, open shot is added by `finish`)."""
        return self._shots

    @property
    def settled_frames(self) -> int:
        """Frames before this index get no new boundary: each lies in a closed shot or the open one."""
        return self._final_upto

    @property
    def transitions(self) -> list[Transition]:
        """Transitions final so far."""
        return self._emitted

    @torch.inference_mode()
    def push(self, batch: np.ndarray | torch.Tensor) -> list[Transition]:
        """Add consecutive frames; returns the transitions that became final."""
        if len(batch) == 0:
            return []
        x = _as_float_frames(batch, self.device, self.size)
        feats = _Features(x)
        n_new = len(feats)
        prev = self._tail
        allf = feats if prev is None else _Features.cat([prev, feats])
        n_prev = 0 if prev is None else len(prev)
        first = self.frames  # global index of the first new frame

        # Pair distances d(t-k, t) for every new t, k = 1..PAIR_LAGS (inf where t-k < 0).
        pair = torch.full((n_new, PAIR_LAGS), float("inf"), device=self.device)
        hist_pair = torch.full((n_new, PAIR_LAGS), float("inf"), device=self.device)
        spiky = torch.zeros(len(allf), dtype=torch.bool, device=self.device)
        if self._spiky_tail is not None:
            spiky[:n_prev] = self._spiky_tail
        for k in range(1, PAIR_LAGS + 1):
            lo = max(n_prev, k)
            if lo >= len(allf):
                continue
            j = torch.arange(lo, len(allf), device=self.device)
            if k > 1:
                # Longer lags only feed the flash test of candidate cuts: compute them only for
                # pairs (t-k, t) that span a frame whose one-step change could be a cut.
                window = torch.stack([spiky[j - m] for m in range(k)]).any(dim=0)
                j = j[window]
                if len(j) == 0:
                    continue
            ds = _structure_distance(allf.struct[j - k], allf.struct[j], SHIFT)
            dh = 0.5 * (allf.hist[j - k] - allf.hist[j]).abs().sum(dim=1)
            pair[j - n_prev, k - 1] = ds + dh
            hist_pair[j - n_prev, k - 1] = dh
            if k == 1:
                spiky[lo:] = pair[lo - n_prev :, 0] > SPIKE_FLOOR
        motion = torch.zeros(n_new, device=self.device)
        if len(allf) > 1:
            lo = max(n_prev, 1)
            m = (allf.half[lo:] - allf.half[lo - 1 : -1]).abs().mean(dim=(1, 2))
            motion[lo - n_prev :] = m

        # Banded Gram rows: g[t, l] = <v[t-l], v[t]> for l = 0..GRAM_LAG.
        v = allf.vec
        # One matmul of the new frames against all buffered ones, then read off the band.
        full = v[n_prev:] @ v.T  # (n_new, n_prev + n_new)
        rows = torch.arange(n_new, device=self.device)[:, None]
        cols = rows + n_prev - torch.arange(GRAM_LAG + 1, device=self.device)[None, :]
        gram = torch.where(cols >= 0, full[rows, cols.clamp(min=0)], torch.zeros((), device=self.device))
        gram_all = gram if self._gram_tail is None else torch.cat([self._gram_tail, gram])
        self.frames += n_new
        fit = self._fit(gram_all, first - (len(gram_all) - n_new), v.shape[1])

        self._scores.append(
            mean=feats.mean.cpu().numpy(),
            std=feats.std.cpu().numpy(),
            detail=feats.detail.cpu().numpy(),
            motion=motion.cpu().numpy(),
            pair=pair.cpu().numpy(),
            hist=hist_pair[:, 0].cpu().numpy(),
        )
        for name, val in fit.items():
            self._scores.append(**{name: val})
        if self.record_evidence:
            for name in self._evidence:
                self._evidence[name].append(self._scores.data[name][-n_new:].copy())
        keep = max(GRAM_LAG, PAIR_LAGS) + 1
        self._tail = allf.tail(keep)
        self._spiky_tail = spiky[-keep:]
        self._gram_tail = gram_all[-keep:]
        return self._finalize(self.frames - MARGIN)

    def _fit(self, gram: torch.Tensor, g0: int, dim: int) -> dict[str, np.ndarray]:
        """Linear-blend fits v[t] ~ a*v[c-w] + (1-a)*v[c+w] for centres whose windows are complete."""
        wmax = max(HALF_WIDTHS)
        c_lo, c_hi = self._fit_next, self.frames - wmax  # centres [c_lo, c_hi)
        if c_hi <= c_lo:
            return {}
        nc = c_hi - c_lo
        e = torch.zeros(nc, len(HALF_WIDTHS), device=self.device)
        r = torch.full((nc, len(HALF_WIDTHS)), float("inf"), device=self.device)
        lin = torch.full((nc, len(HALF_WIDTHS)), float("inf"), device=self.device)
        alo = torch.zeros(nc, len(HALF_WIDTHS), device=self.device)
        ahi = torch.zeros(nc, len(HALF_WIDTHS), device=self.device)
        centres = torch.arange(c_lo, c_hi, device=self.device)
        n_rows = gram.shape[0]

        def dot(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            # <v[i], v[j]> from the band (|i - j| <= GRAM_LAG), rows indexed from g0.
            hi_, lo_ = torch.maximum(i, j), torch.minimum(i, j)
            return gram[(hi_ - g0).clamp(0, n_rows - 1), (hi_ - lo_).clamp(0, GRAM_LAG)]

        for wi, w in enumerate(HALF_WIDTHS):
            a_idx, b_idx = centres - w, centres + w
            valid = a_idx >= 0
            a_idx = a_idx.clamp(min=0)
            aa, bb, ab = dot(a_idx, a_idx), dot(b_idx, b_idx), dot(a_idx, b_idx)
            dd = (aa + bb - 2 * ab).clamp(min=1e-9)  # |A - B|^2
            offs = torch.arange(-w, w + 1, device=self.device)
            x_idx = (centres[:, None] + offs[None, :]).clamp(min=0)
            xx = dot(x_idx, x_idx)
            xa, xb = dot(x_idx, a_idx[:, None].expand_as(x_idx)), dot(x_idx, b_idx[:, None].expand_as(x_idx))
            g = xa - xb - (ab - bb)[:, None]  # (X - B).(A - B)
            nxb = (xx + bb[:, None] - 2 * xb).clamp(min=0)  # |X - B|^2
            alpha = g / dd[:, None]
            res = (nxb - g * g / dd[:, None]).clamp(min=0)
            ideal = (w - offs).float() / (2 * w)
            e[:, wi] = torch.where(valid, (dd / dim).sqrt(), torch.zeros_like(dd))
            r[:, wi] = torch.where(valid, (res.mean(dim=1) / dd).sqrt(), r[:, wi])
            lin[:, wi] = torch.where(valid, (alpha - ideal[None, :]).abs().mean(dim=1), lin[:, wi])
            # Blend extent: first frame that has left A (alpha < 0.9), last frame not yet fully B (alpha > 0.1).
            left = alpha < 0.9
            right = alpha > 0.1
            first_left = torch.where(left.any(1), left.float().argmax(1), torch.full_like(centres, 2 * w))
            last_right = torch.where(
                right.any(1), 2 * w - right.flip(1).float().argmax(1), torch.zeros_like(centres)
            )
            alo[:, wi] = (a_idx + first_left).float()
            ahi[:, wi] = (a_idx + last_right).float()
        self._fit_next = c_hi
        return {
            "fit_e": e.cpu().numpy(),
            "fit_r": r.cpu().numpy(),
            "fit_lin": lin.cpu().numpy(),
            "fit_lo": alo.cpu().numpy(),
            "fit_hi": ahi.cpu().numpy(),
        }

    # ---- decisions --------------------------------------------------------------------
    def _finalize(self, upto: int, *, last: bool = False) -> list[Transition]:
        """Decide transitions anchored in [final_upto, upto) using scores with enough context."""
        if upto <= self._final_upto and not last:
            return []
        s = self._scores
        lo = max(s.base, self._final_upto - MARGIN)
        found = _decide(s, lo, self.frames)
        new: list[Transition] = []
        for t in found:
            if t.start_frame < self._final_upto or (not last and t.start_frame >= upto):
                continue
            if self._emitted and t.start_frame <= self._emitted[-1].end_frame:
                continue
            self._emitted.append(t)
            new.append(t)
            self._close_shot(t)
        if not last:
            self._final_upto = max(self._final_upto, upto)
            drop = max(0, self._final_upto - 2 * MARGIN)
            # Every later boundary lies after `drop`: bank the open shot's motion before forgetting it.
            self._shot_motion(max(drop, self._shot_start))
            self._scores.drop_before(drop)
        return new

    def _shot_motion(self, end: int) -> None:
        s = self._scores
        a, b = max(self._motion_from, s.base), end
        if b > a:
            self._motion_sum += float(s.data["motion"][a - s.base : b - s.base].sum())
        self._motion_from = max(self._motion_from, b)

    def _close_shot(self, t: Transition) -> None:
        # Shots partition the video; a gradual transition is split at its midpoint.
        boundary = t.start_frame if t.type == "cut" else (t.start_frame + t.end_frame + 1) // 2
        if boundary <= self._shot_start:
            return
        self._shot_motion(boundary)
        n = boundary - self._shot_start
        self._shots.append(
            Shot(
                self._shot_start,
                boundary - 1,
                self._shot_start / self.fps,
                boundary / self.fps,
                self._motion_sum / n,
            )
        )
        self._shot_start, self._motion_sum = boundary, 0.0

    def evidence(self) -> dict[str, np.ndarray]:
        """Per-frame classical evidence so far (`record_evidence` must be set before the first push):
        pair (N, 4) distances d(t-k, t), motion, luma mean/std, colour-histogram step."""
        out = {}
        for k, v in self._evidence.items():
            if len(v) > 1:
                v[:] = [np.concatenate(v)]  # compact: repeated calls do not re-join every batch
            out[k] = v[0] if v else np.zeros((0, PAIR_LAGS) if k == "pair" else 0, np.float32)
        return out

    def finish(self) -> ShotDetection:
        """Flush the last frames and return the whole detection."""
        self._finalize(self.frames, last=True)
        self._final_upto = self.frames
        if self.frames > self._shot_start:
            self._shot_motion(self.frames)
            n = self.frames - self._shot_start
            self._shots.append(
                Shot(
                    self._shot_start,
                    self.frames - 1,
                    self._shot_start / self.fps,
                    self.frames / self.fps,
                    self._motion_sum / n,
                )
            )
            self._shot_start = self.frames
        return ShotDetection(self.fps, self.frames, list(self._shots), list(self._emitted))


def _rolling_median_mad(x: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of x over a centred window (edges use the reflected signal)."""
    if len(x) == 0:
        return x, x
    padded = np.pad(x, radius, mode="reflect" if len(x) > radius else "edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    med = np.median(win, axis=1)
    mad = np.median(np.abs(win - med[:, None]), axis=1)
    return med, mad


def _decide(s: _Scores, lo: int, frames: int) -> list[Transition]:
    """Cuts, fades and dissolves from the scores of frames [lo, frames), in frame order."""
    d = s.data
    if "pair" not in d or frames - lo < 2:
        return []
    o = lo - s.base
    pair = d["pair"][o:]
    mean = d["mean"][o:]
    std = d["std"][o:]
    n = len(pair)
    step = pair[:, 0].copy()
    step[~np.isfinite(step)] = 0.0
    if lo == 0:
        step[0] = 0.0

    fades = _fades(mean, std, lo)
    blocked = np.zeros(n, bool)
    for f in fades:
        blocked[max(0, f.start_frame - lo - 1) : f.end_frame - lo + 2] = True

    med, mad = _rolling_median_mad(step, MEDIAN_RADIUS)
    thresh = np.maximum(med + 8.0 * 1.4826 * mad + 0.05, CUT_FLOOR)
    cuts: list[Transition] = []
    for i in np.flatnonzero(step > thresh):
        if blocked[i]:
            continue
        sc = step[i]
        neigh = max(step[i - 1] if i >= 1 else 0.0, step[i + 1] if i + 1 < n else 0.0)
        if sc < 1.6 * neigh:
            continue  # part of sustained change (whip pan, fast motion), not a single-frame break
        # Flash rejection: the frames after t return to the content before t (start of a flash), or
        # t matches a frame before the flash (its end).
        after = [pair[i - 1 + k, k - 1] for k in range(2, PAIR_LAGS + 1) if i - 1 + k < n]
        before = [pair[i, k - 1] for k in range(2, PAIR_LAGS + 1)]
        back = min([v for v in after + before if np.isfinite(v)], default=np.inf)
        if back < 0.55 * sc:
            continue
        # Confidence: margin over the adaptive threshold times how clearly the change persists.
        margin = float(np.clip(1.0 - thresh[i] / sc, 0.0, 1.0))
        persists = float(np.clip((back / sc - 0.55) / 0.35, 0.0, 1.0)) if np.isfinite(back) else 1.0
        cuts.append(Transition("cut", lo + int(i), lo + int(i), float(np.sqrt(margin * persists))))

    dissolves = _dissolves(s, lo, frames, fades)
    # A blend's fitted extent is uncertain by a few frames: a "cut" touching a dissolve is its edge.
    cuts = [
        c for c in cuts if not any(d.start_frame - 3 <= c.start_frame <= d.end_frame + 3 for d in dissolves)
    ]
    return sorted(cuts + fades + dissolves, key=lambda t: t.start_frame)


def _fades(mean: np.ndarray, std: np.ndarray, lo: int) -> list[Transition]:
    """Fades through black: a dark run with brightness ramping down before it and/or up after it."""
    dark = (mean < 0.1) & (std < 0.05)
    out: list[Transition] = []
    n = len(mean)
    i = 0
    while i < n:
        if not dark[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and dark[j + 1]:
            j += 1
        # Extend over the monotone brightness ramps on both sides of the dark run.
        a = i
        while a - 1 >= 0 and mean[a - 1] > mean[a] + 0.002:
            a -= 1
        b = j
        while b + 1 < n and mean[b + 1] > mean[b] + 0.002:
            b += 1
        ramp = (i - a) + (b - j)
        floor = float(mean[i : j + 1].min())
        shoulder = max(float(mean[a]), float(mean[b]))
        if ramp >= 4 and a > 0 and shoulder - floor > 0.08:
            conf = float(np.clip((shoulder - floor) / 0.2, 0.0, 1.0) * min(1.0, ramp / 8))
            out.append(Transition("fade", lo + a, lo + b, conf))
        i = b + 1
    return out


def _dissolves(s: _Scores, lo: int, frames: int, fades: list[Transition]) -> list[Transition]:
    """Gradual transitions that fit a linear blend between two different-looking frames."""
    d = s.data
    if "fit_e" not in d:
        return []
    o = lo - s.base
    e, r, lin = d["fit_e"][o:], d["fit_r"][o:], d["fit_lin"][o:]
    flo, fhi = d["fit_lo"][o:], d["fit_hi"][o:]
    n = len(e)
    if n == 0:
        return []
    e_med = np.nanmedian(np.where(np.isfinite(r), e, np.nan), axis=0)
    e_med = np.nan_to_num(e_med, nan=0.0)
    with np.errstate(invalid="ignore"):
        r = np.nan_to_num(r, nan=np.inf)
    detail = d["detail"][o:]
    idx = np.arange(n)
    dip = np.ones_like(e)
    for wi, w in enumerate(HALF_WIDTHS):
        a, b = idx - w, np.minimum(idx + w, len(detail) - 1)
        ends = 0.5 * (detail[np.maximum(a, 0)] + detail[b])
        dip[:, wi] = np.where(a >= 0, detail[idx] / np.maximum(ends, 1e-6), 1.0)
    # Either the endpoints differ far more than usual here, or (similar-looking scenes) fine detail
    # dips in the middle the way a blend of two unrelated images does.
    # Short windows over a slow pan of smooth texture also look like blends (to first order a small
    # shift is a blend), so they need the detail dip as well.
    wide = np.asarray(HALF_WIDTHS)[None, :] >= 8
    ok = (
        (lin < 0.12)
        & (e > 0.04)
        & (
            ((r < R_MAX) & (e > 1.5 * e_med[None, :]) & (wide | (dip < 0.92)))
            | ((r < DIP_R_MAX) & (dip < DIP_MAX) & wide)
        )
    )
    with np.errstate(over="ignore", invalid="ignore"):
        score = np.where(ok, e * np.clip(1.0 - r / DIP_R_MAX, 0.0, 1.0), 0.0)
    best_w = score.argmax(axis=1)
    best = score[np.arange(n), best_w]
    taken = np.zeros(frames - lo + 1, bool)
    for t in fades:
        taken[max(0, t.start_frame - lo - 2) : max(0, t.end_frame - lo + 3)] = True
    found: list[Transition] = []
    for c in np.argsort(-best):
        if best[c] <= 0:
            break
        wi = best_w[c]
        first, last = int(flo[c, wi]), int(fhi[c, wi])
        if last - first < 2 or taken[max(0, first - lo) : last - lo + 1].any():
            continue
        taken[max(0, first - lo) : last - lo + 1] = True
        found.append(Transition("dissolve", first, last, float(np.clip(1.0 - r[c, wi] / R_MAX, 0.0, 1.0))))
    # One long dissolve is often fitted as several adjacent pieces: merge pieces a few frames apart.
    merged: list[Transition] = []
    for t in sorted(found, key=lambda t: t.start_frame):
        if merged and t.start_frame - merged[-1].end_frame <= 4:
            m = merged[-1]
            m.end_frame = max(m.end_frame, t.end_frame)
            m.confidence = max(m.confidence, t.confidence)
        else:
            merged.append(t)
    return merged


@contextmanager
def torch_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """Run CPU torch ops with `threads` intra-op threads, restoring the global setting afterwards."""
    if device.type != "cpu" or threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _video_fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def decode_batches(
    path: str | Path,
    size: tuple[int, int] | None,
    window: int,
    also: tuple[int, int] | None = None,
    analysis: tuple[int, int] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Yield (fps, NHWC uint8 RGB batch of up to `window` frames) in order; `size` (w, h) or None for the source size.

    With `also` (w, h), each decoded frame is scaled a second time by the decoder to that size and the
    items are (fps, batch, small batch): one decode feeds two consumers (e.g. TransNetV2's 48x27).
    With `analysis` (w, h) as well, a third scaling (bicubic, as `size`) is appended: (fps, batch, small,
    analysis batch). The classical detector then reads its 64x36 frames straight from the decoder instead
    of converting the keyframe-size batch to float and area-averaging it (measured: that conversion was
    a tenth of a video's analysis time; the shot benchmark's `detect_video` already decodes at 64x36).

    Decodes sequentially with PyAV in one background thread that is at most two batches ahead: decord's
    reader keeps decoding ahead of a slow consumer, so its memory grew with the video's length."""
    import av
    from av.video.reformatter import Interpolation, VideoReformatter

    path = Path(path)
    out: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def pack(
        fps: float, batch: np.ndarray, small: np.ndarray | None, tiny: np.ndarray | None, k: int
    ) -> tuple[Any, ...]:
        head: tuple[Any, ...] = (fps, batch[:k])
        if also is not None:
            head += (None if small is None else small[:k],)
        elif analysis is not None:
            head += (None,)
        return head if analysis is None or tiny is None else (*head, tiny[:k])

    def decode(container: Any, stream: Any) -> None:
        fps = _video_fps(stream)
        # One reformatter for the whole video keeps its scaler context (a fresh one per frame is 4x slower);
        # bicubic as in decord's scale filter: the same detections on both benchmark corpora.
        scaler = VideoReformatter()
        small_scaler = VideoReformatter()
        analysis_scaler = VideoReformatter()
        w, h = size if size is not None else (stream.codec_context.width, stream.codec_context.height)
        batch: np.ndarray | None = None
        small: np.ndarray | None = None
        tiny: np.ndarray | None = None
        k = decoded = 0
        try:
            for frame in container.decode(stream):
                if stop.is_set():
                    return
                if w <= 0 or h <= 0:
                    w, h = frame.width, frame.height
                rgb = scaler.reformat(
                    frame, width=w, height=h, format="rgb24", interpolation=Interpolation.BICUBIC, threads=1
                )
                if batch is None:
                    batch, k = np.empty((window, h, w, 3), np.uint8), 0
                    if also is not None:
                        small = np.empty((window, also[1], also[0], 3), np.uint8)
                    if analysis is not None:
                        tiny = np.empty((window, analysis[1], analysis[0], 3), np.uint8)
                batch[k] = rgb.to_ndarray()
                if also is not None and small is not None:
                    # The scaler's default interpolation, as in the reference `frame.reformat(width=48, height=27)`.
                    small[k] = small_scaler.reformat(
                        frame, width=also[0], height=also[1], format="rgb24", threads=1
                    ).to_ndarray()
                if analysis is not None and tiny is not None:
                    tiny[k] = analysis_scaler.reformat(
                        frame,
                        width=analysis[0],
                        height=analysis[1],
                        format="rgb24",
                        interpolation=Interpolation.BICUBIC,
                        threads=1,
                    ).to_ndarray()
                k += 1
                decoded += 1
                if k == window:
                    out.put(("batch", pack(fps, batch, small, tiny, k)))
                    batch = None
        except av.FFmpegError as exc:
            raise MediaError(
                Reason.TRUNCATED_MEDIA, f"video {path.name} stops decoding at frame {decoded}: {exc}"
            ) from exc
        if batch is not None:
            out.put(("batch", pack(fps, batch, small, tiny, k)))
        claimed = int(stream.frames or 0)
        if claimed and decoded < claimed - max(2, claimed // 100):
            raise MediaError(
                Reason.TRUNCATED_MEDIA,
                f"video {path.name} stops decoding at frame {decoded} of the {claimed} its header claims",
            )

    def produce() -> None:
        try:
            try:
                container = av.open(str(path), metadata_errors="ignore")
            except (av.FFmpegError, OSError) as exc:
                raise MediaError(Reason.CORRUPT_MEDIA, f"cannot open video {path.name}: {exc}") from exc
            with container:
                if not container.streams.video:
                    raise MediaError(Reason.CORRUPT_MEDIA, f"{path.name} holds no video stream")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                decode(container, stream)
            out.put(("end", None))
        except BaseException as exc:  # re-raised in the consuming thread
            out.put(("error", exc))

    worker = threading.Thread(target=produce, name="video-decoder", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = out.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def detect_shots_in_batches(
    batches: Iterable[np.ndarray | torch.Tensor],
    fps: float,
    *,
    device: str = "cpu",
    analysis_size: tuple[int, int] = ANALYSIS_SIZE,
    threads: int | None = 1,
) -> ShotDetection:
    """Detect shots from consecutive NHWC uint8 frame batches (any size; resized on the device)."""
    det = ShotDetector(fps, device=device, analysis_size=analysis_size)
    with torch_threads(det.device, threads):
        for batch in batches:
            det.push(batch)
        return det.finish()


def detect_shots(
    path: str | Path,
    *,
    device: str = "cpu",
    analysis_size: tuple[int, int] = ANALYSIS_SIZE,
    window: int = 256,
    threads: int | None = 1,
) -> ShotDetection:
    """Detect shots and transitions in a video file, decoding `window` frames at a time.

    On CPU the small per-batch tensors run fastest on one torch thread (`threads`) while the
    decoder thread works ahead; pass None to keep torch's global setting."""
    path = Path(path)
    if not path.exists():
        raise MediaError(Reason.MISSING_SOURCE, f"video {path} does not exist")
    det: ShotDetector | None = None
    with torch_threads(torch.device(device), threads):
        for fps, batch, *_ in decode_batches(path, analysis_size, window):
            if det is None:
                det = ShotDetector(fps, device=device, analysis_size=analysis_size)
            det.push(batch)
        if det is None:
            raise MediaError(Reason.CORRUPT_MEDIA, f"video {path.name} has no decodable frames")
        return det.finish()
