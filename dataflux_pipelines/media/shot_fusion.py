"""Fusion of TransNetV2's per-frame probabilities with the classical shot evidence: candidates, features, calibrated scores.

Plain functions over numpy arrays (the global-shift check uses torch for one grouped convolution). Every
candidate boundary (a learned peak, a structure/colour spike, a learned many-hot run or a classical blend/fade fit) gets a feature vector; logistic models fitted on the tuning corpus (seed 7,
`bench/shots_fit.py`) turn it into a probability, which is the transition's confidence.

Cuts combine two experts, each calibrated on its own: the learned one (TransNetV2's peak) and the classical one
(step, isolation, flash test, motion), as naive Bayes: logit p = logit p_learned + logit p_classical - logit prior.
A joint fit would not do: on the generated corpus the classical features alone separate the cuts, so it would
give the learned signal almost no weight, and a cut the classical distances cannot see (two look-alike shots)
could never be found however sure TransNetV2 is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataflux_pipelines.media.shots import Transition

EVIDENCE_VERSION = 2  # bump when the evidence changes: bench/shots_fit.py's cached evidence is rebuilt
THRESHOLD = 0.5  # a transition is reported when its calibrated probability reaches this
CUT_NMS = 3  # frames: of two cut candidates this close, the likelier one stands for both
CONTEXT = 25  # frames either side a decision looks at (the streaming detector waits for them)
LEARNED_PEAK_FLOOR = 0.01  # learned single-frame peaks below this are not candidates
STEP_PEAK_FLOOR = 0.2  # classical one-step distances below this are not candidates
GLOBAL_FLOOR = 0.005  # RMS luma steps (0..1) below this are noise, not motion: keeps the pan ratio finite
MANY_RUN = 0.12  # many-hot probability that makes a frame part of a learned gradual run

# The classical detector's own cut decision is not a feature: it is a thresholded function of the step
# features, and on the tuning corpus it separates the cuts so cleanly that a fit would trust nothing else.
# "learned_rel" measures the learned peak against the median of the video around it: a cut between moving close-ups
# is a weak TransNetV2 peak in absolute terms (0.05-0.5 on the music video), strong against its own background.
# A step-over-neighbours ratio like PySceneDetect's AdaptiveDetector (mean of 2 frames either side) was tried as a
# further classical feature and dropped: next to "isolation" it lowered the tuning seed's out-of-fold F1.
CUT_FEATURES = ("learned", "learned_rel", "step_rel", "isolation", "returns", "motion", "pan")
LEARNED_COLUMNS = 2  # the learned expert sees CUT_FEATURES[:2], the classical expert the rest
GRADUAL_FEATURES = (
    "learned",
    "learned_many",
    "many_share",
    "classical",
    "classical_found",
    "dark",
    "length",
    "learned_cut",
    "pan",
)

# Fitted by `bench/shots_fit.py --videos 48 --montages 12 --l2 0.3` on the tuning seed 7 only (intercept last),
# 2026-12-02: 1923 cut candidates (335 true), 295 gradual candidates (128 true) of 48 standard videos and 12 close-up
# montages. l2 0.3 and 1.0 tied on out-of-fold F1 (0.972, 4-fold split of those 60 videos); 0.3 fired on fewer
# flashes and fast motions. Feature order: CUT_FEATURES (learned expert, then classical), GRADUAL_FEATURES.
CUT_LEARNED_WEIGHTS = np.array([0.302, 0.3965, -3.5907])
CUT_CLASSICAL_WEIGHTS = np.array([-0.1325, 4.6712, 5.9273, 0.2409, 1.1603, -8.3309])
CUT_PRIOR = 0.1742  # share of true cuts among the tuning candidates
GRADUAL_WEIGHTS = np.array(
    [-0.8737, 1.2526, 1.6877, -2.9677, 3.2738, 4.0163, 1.0028, -0.0493, 3.3191, -6.0404]
)


@dataclass(frozen=True)
class FusionWeights:
    """The fitted models: cut experts (learned, classical) with the prior they share, and the gradual model."""

    learned: np.ndarray = field(default_factory=lambda: CUT_LEARNED_WEIGHTS)
    classical: np.ndarray = field(default_factory=lambda: CUT_CLASSICAL_WEIGHTS)
    prior: float = CUT_PRIOR
    gradual: np.ndarray = field(default_factory=lambda: GRADUAL_WEIGHTS)


SHIPPED = FusionWeights()


@dataclass
class Evidence:
    """Per-frame signals of frames [0, n): learned probabilities as TransNetV2 gives them (a boundary is
    marked on the last frame of the old shot) and the classical detector's distances and brightness."""

    single: np.ndarray
    many: np.ndarray
    pair: np.ndarray  # (n, 4): d(t-k, t) for k = 1..4 (inf where not computed)
    motion: np.ndarray
    mean: np.ndarray
    classical: list[Transition] = field(default_factory=list)
    # (n, 2) `global_motion_steps` of the 48x27 frames: unshifted and best-global-shift step
    glob: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.pair)
        g = np.zeros((n, 2), np.float32) if self.glob is None else np.asarray(self.glob, np.float32)
        g = np.r_[g[:n], np.zeros((max(0, n - len(g)), 2), np.float32)]
        # log(shifted / unshifted step): near 0 across a cut, far below 0 for a pan or whip pan.
        self.pan = np.log((g[:, 1] + GLOBAL_FLOOR) / (g[:, 0] + GLOBAL_FLOOR))
        # Re-index the learned heads so that index t means "a boundary before frame t", like `step`.
        self.ls = np.zeros(n, np.float32)
        self.lm = np.zeros(n, np.float32)
        m = min(n, len(self.single) + 1)
        self.ls[1:m] = self.single[: m - 1]
        self.lm[1:m] = self.many[: m - 1]
        step = self.pair[:, 0].copy() if n else np.zeros(0, np.float32)
        step[~np.isfinite(step)] = 0.0
        if n:
            step[0] = 0.0
        self.step = step


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _local_max(x: np.ndarray, floor: float) -> np.ndarray:
    left = np.r_[-np.inf, x[:-1]]
    right = np.r_[x[1:], -np.inf]
    return np.flatnonzero((x >= floor) & (x >= left) & (x > right))


def _window(x: np.ndarray, a: int, b: int) -> np.ndarray:
    return x[max(0, a) : max(0, min(len(x), b))]


def _returns(ev: Evidence, t: int) -> float:
    """Flash test: the smallest distance from across t back to the content before it, over the step.

    1.0 (what a clean cut gives) where the classical detector computed no longer lags: it does so only around
    one-step changes big enough to be a cut, so there is nothing to return from."""
    pair, n = ev.pair, len(ev.pair)
    vals = [pair[t - 1 + k, k - 1] for k in range(2, 5) if 0 <= t - 1 + k < n and t >= 1]
    vals += [pair[t, k - 1] for k in range(2, 5) if t - k >= 0]
    vals = [v for v in vals if np.isfinite(v)]
    if not vals or ev.step[t] < 1e-3:
        return 1.0
    return float(min(min(vals) / ev.step[t], 1.5))


def cut_candidates(ev: Evidence, lo: int = 0, hi: int | None = None) -> list[int]:
    """Frames t in [lo, hi) that may start a new shot: learned peaks and classical one-step spikes."""
    hi = len(ev.step) if hi is None else hi
    found = set(int(t) for t in _local_max(ev.ls, LEARNED_PEAK_FLOOR))
    found |= set(int(t) for t in _local_max(ev.step, STEP_PEAK_FLOOR))
    found |= {c.start_frame for c in ev.classical if c.type == "cut"}
    return sorted(t for t in found if lo <= t < hi and t > 0)


def cut_features(ev: Evidence, t: int) -> np.ndarray:
    step = ev.step
    returns = min(
        _returns(ev, t), 1.0
    )  # above 1 the lagged distances grow with motion: no more cut-like than 1
    # The step counts only as far as the frames after it do not return to those before it: the last frame of a
    # flash is a big isolated step, but it returns, so its step ratios collapse instead of outvoting the flash test.
    s = float(step[t]) * returns
    neigh = max(float(step[t - 1]) if t >= 1 else 0.0, float(step[t + 1]) if t + 1 < len(step) else 0.0)
    around = np.r_[_window(step, t - CONTEXT, t - 1), _window(step, t + 2, t + CONTEXT + 1)]
    med = float(np.median(around)) if len(around) else 0.0
    motion = _window(ev.motion, t - 12, t + 13)
    peak = float(_logit(_window(ev.ls, t - 1, t + 2).max()))
    background = np.r_[_window(ev.ls, t - CONTEXT, t - 1), _window(ev.ls, t + 2, t + CONTEXT + 1)]
    values = {
        "learned": peak,
        "learned_rel": peak - float(np.median(_logit(background))) if len(background) else 0.0,
        "step_rel": np.log((s + 0.01) / (med + 0.01)),
        "isolation": np.log((s + 0.01) / (neigh + 0.01)),
        "returns": returns,
        "motion": np.log(float(np.median(motion)) + 1e-3) if len(motion) else np.log(1e-3),
        "pan": float(ev.pan[t]),
    }
    return np.array([values[k] for k in CUT_FEATURES])


def gradual_candidates(ev: Evidence, lo: int = 0, hi: int | None = None) -> list[tuple[int, int, float]]:
    """Ranges [a, b] that may be a dissolve or fade, with the classical detector's confidence (-1 if it has none):
    learned many-hot runs (pieces of one long dissolve joined) and classical blend/fade fits, overlapping ones merged."""
    hi = len(ev.step) if hi is None else hi
    runs: list[list[float]] = []
    on = ev.lm > MANY_RUN
    t = lo
    while t < hi:
        if not on[t]:
            t += 1
            continue
        a = t
        while t + 1 < hi and on[t + 1]:
            t += 1
        if t - a + 1 >= 3:
            # A long dissolve is often marked as two or three pieces: join a piece to the last one when the
            # many-hot head never drops to background in between.
            if runs and a - runs[-1][1] <= 8 and ev.lm[int(runs[-1][1]) : a].min() > 0.03:
                runs[-1][1] = t
            else:
                runs.append([a, t, -1.0])
        t += 1
    for c in ev.classical:
        if c.type != "cut" and lo <= c.start_frame < hi:
            runs.append([c.start_frame, c.end_frame, c.confidence])
    runs.sort()
    merged: list[list[float]] = []
    for start, end, conf in runs:
        if merged and start <= merged[-1][1] + 3:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = max(merged[-1][2], conf)  # -1 (learned only) loses to any classical fit
        else:
            merged.append([start, end, conf])
    return [(int(a), int(b), float(c)) for a, b, c in merged]


def gradual_features(ev: Evidence, a: int, b: int, classical: float) -> np.ndarray:
    many = _window(ev.lm, a, b + 1)
    mean = _window(ev.mean, a - 2, b + 3)
    ls = _window(ev.ls, a - 1, b + 2)
    # A sharp single-frame peak with little around it is a cut the many-hot head smeared, not a blend.
    learned_cut = float(ls.max() > 0.5 and (ls > 0.2).sum() <= 2) if len(ls) else 0.0
    values = {
        "learned": float(_logit(ls.max() if len(ls) else 0.0)),
        "learned_many": float(_logit(many.max() if len(many) else 0.0)),
        "many_share": float((many > 0.5).mean()) if len(many) else 0.0,
        "classical": max(classical, 0.0),
        "classical_found": float(classical >= 0.0),
        "dark": float(len(mean) > 0 and mean.min() < 0.1),
        "length": np.log(b - a + 1.0),
        "learned_cut": learned_cut,
        "pan": float(np.median(_window(ev.pan, a, b + 2))) if b + 2 > a else 0.0,
    }
    return np.array([values[k] for k in GRADUAL_FEATURES])


def _score(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x)
    return _sigmoid(x @ w[:-1] + w[-1])


def cut_probability(
    x: np.ndarray,
    learned: np.ndarray = CUT_LEARNED_WEIGHTS,
    classical: np.ndarray = CUT_CLASSICAL_WEIGHTS,
    prior: float = CUT_PRIOR,
) -> np.ndarray:
    """Naive-Bayes combination of the learned and the classical cut experts for feature rows x (N, CUT_FEATURES)."""
    x = np.atleast_2d(x)
    k = LEARNED_COLUMNS
    z = (x[:, :k] @ learned[:-1] + learned[-1]) + (x[:, k:] @ classical[:-1] + classical[-1])
    return _sigmoid(z - float(_logit(prior)))


def fuse(
    ev: Evidence,
    lo: int = 0,
    hi: int | None = None,
    weights: FusionWeights = SHIPPED,
    threshold: float = THRESHOLD,
) -> list[Transition]:
    """Transitions starting in [lo, hi), each with its calibrated probability as confidence."""
    hi = len(ev.step) if hi is None else hi
    out: list[Transition] = []
    for a, b, conf in gradual_candidates(ev, lo, hi):
        p = float(_score(gradual_features(ev, a, b, conf), weights.gradual)[0])
        if p >= threshold:
            dark = len(_window(ev.mean, a, b + 1)) and _window(ev.mean, a, b + 1).min() < 0.1
            out.append(Transition("fade" if dark else "dissolve", a, b, p))
    cuts = cut_candidates(ev, lo, hi)
    if cuts:
        probs = cut_probability(
            np.stack([cut_features(ev, t) for t in cuts]), weights.learned, weights.classical, weights.prior
        )
        taken: list[Transition] = []
        for i in np.argsort(-probs):
            t, p = cuts[i], float(probs[i])
            if p < threshold:
                break
            if any(abs(c.start_frame - t) <= CUT_NMS for c in taken):
                continue
            if any(g.start_frame - 3 <= t <= g.end_frame + 3 for g in out):
                continue  # the edge of a gradual transition
            taken.append(Transition("cut", t, t, p))
        out += taken
    return sorted(out, key=lambda t: t.start_frame)


def learned_only(single: np.ndarray, many: np.ndarray, threshold: float = 0.5) -> list[Transition]:
    """TransNetV2 alone: a run of single-frame probability above `threshold` is one boundary; it is a dissolve over
    the many-hot run around it when that run is longer than 3 frames, else a cut. Confidence: the peak probability."""
    above = single > threshold
    out: list[Transition] = []
    t, n = 0, len(single)
    while t < n:
        if not above[t]:
            t += 1
            continue
        a = t
        while t + 1 < n and above[t + 1]:
            t += 1
        peak_at = a + int(np.argmax(single[a : t + 1]))
        peak = float(single[peak_at])
        lo = hi = peak_at
        while lo - 1 >= 0 and many[lo - 1] > threshold:
            lo -= 1
        while hi + 1 < n and many[hi + 1] > threshold:
            hi += 1
        lo, hi = min(lo, a), max(hi, t)
        if hi - lo + 1 <= 3:
            # TransNetV2 marks the last frame of the old shot: the new shot starts one frame later.
            f = min(peak_at + 1, n - 1)
            out.append(Transition("cut", f, f, peak))
        else:
            out.append(Transition("dissolve", lo, min(hi + 1, n - 1), peak))
        t = max(t, hi) + 1
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method on standardised features; weights (intercept last)
    in the original feature units."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        w -= np.linalg.solve(hess, grad)
    scale = w[:-1] / sd
    return np.r_[scale, w[-1] - float((w[:-1] * mu / sd).sum())]


GLOBAL_SHIFT = (
    8,
    4,
)  # (x, y) pixels at 48x27 searched for one global translation: ~53 px a frame at 320 wide


def global_motion_steps(frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) per frame t: RMS luma difference to frame t-1 unshifted, and after the best global shift of frame t-1
    (+-GLOBAL_SHIFT pixels), on TransNetV2's 48x27 frames, over the central crop that every shift covers. A pan
    or whip pan is one translation, so its shifted difference drops far below the unshifted one; across a cut
    no shift explains the change.

    `previous` is the frame before `frames[0]` (its row is zero without it)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).float()
    if previous is not None:
        x = torch.cat([torch.from_numpy(np.ascontiguousarray(previous)).float()[None], x])
    out = np.zeros((len(frames), 2), np.float32)
    if len(x) < 2:
        return out
    luma = x @ torch.tensor([0.299, 0.587, 0.114]) / 255.0
    # Mean removed per frame: a lighting change is not motion, and it is not a cut either.
    luma = luma - luma.mean(dim=(1, 2), keepdim=True)
    sx, sy = GLOBAL_SHIFT
    h, w = luma.shape[1:]
    a = luma[:-1]  # frame t-1, every shift of it
    b = luma[1:, sy : h - sy, sx : w - sx]  # frame t, central crop
    n, area = len(b), b.shape[1] * b.shape[2]
    # Squared differences for every shift at once: sum a^2 over the shifted window - 2 <a, b> + sum b^2,
    # the cross term as one grouped convolution (each frame t-1 correlated with its own frame t).
    cross = F.conv2d(a[None], b[:, None], groups=n)[0]  # (n, 2sy+1, 2sx+1)
    a2 = F.conv2d((a * a)[:, None], torch.ones(1, 1, *b.shape[1:]))[:, 0]
    ssd = (a2 - 2 * cross + (b * b).sum(dim=(1, 2))[:, None, None]).clamp_(min=0)
    rms = (ssd / area).sqrt_()
    k = len(frames) - n
    out[k:, 0], out[k:, 1] = rms[:, sy, sx].numpy(), rms.amin(dim=(1, 2)).numpy()
    return out
