"""Fit the shot-fusion weights (calibrated logistic models) on the tuning corpus only: seed 7 of bench/shots_corpus.py.

Usage: .venv/bin/python bench/shots_fit.py [--seed 7] [--videos 24] [--montages 12] [--l2 0.3] [--cv 0.3,1,3,10]
Prints the weights for dataflux_pipelines/media/shot_fusion.py and a reliability table; `--cv` instead prints the
out-of-fold F1 of each L2 strength in a 4-fold split of the tuning videos (how --l2 was chosen).
Refuses any seed but the tuning seed: the held-out seed (11) and the real clips are never fitted on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shots_corpus import Truth, generate_corpus

from dataflux_pipelines.media import shot_fusion as sf
from dataflux_pipelines.media.shot_detector import FusedShotDetector
from dataflux_pipelines.media.shots import ANALYSIS_SIZE, Transition, decode_batches

TUNING_SEED = 7


def evidence_of(path: Path) -> sf.Evidence:
    """Run both detectors once over the file and keep their per-frame evidence (cached beside the video)."""
    cache = path.with_suffix(f".evidence{sf.EVIDENCE_VERSION}.npz")
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        classical = [
            Transition(str(t), int(a), int(b), float(c))
            for t, a, b, c in zip(z["ct"], z["ca"], z["cb"], z["cc"], strict=True)
        ]
        glob = z["glob"] if "glob" in z.files else None
        return sf.Evidence(z["single"], z["many"], z["pair"], z["motion"], z["mean"], classical, glob)
    det = None
    for fps, batch, small in decode_batches(path, ANALYSIS_SIZE, 256, also=(48, 27)):
        det = det or FusedShotDetector(fps, detector="fused")
        det.push(batch, small)
    det.classical.finish()
    single, many = det.stream.finish()
    ev = det._evidence(single, many)
    c = ev.classical
    np.savez(
        cache,
        single=single,
        many=many,
        pair=ev.pair,
        motion=ev.motion,
        mean=ev.mean,
        glob=ev.glob,
        ct=np.array([t.type for t in c], dtype="U8"),
        ca=np.array([t.start_frame for t in c], int),
        cb=np.array([t.end_frame for t in c], int),
        cc=np.array([t.confidence for t in c], float),
    )
    return ev


def labelled(
    ev: sf.Evidence, truth: Truth
) -> tuple[list[np.ndarray], list[int], list[np.ndarray], list[int]]:
    cuts = [g["start_frame"] for g in truth.transitions if g["type"] == "cut"]
    grads = [(g["start_frame"], g["end_frame"]) for g in truth.transitions if g["type"] != "cut"]
    xc, yc, xg, yg = [], [], [], []
    for t in sf.cut_candidates(ev):
        if any(a - 3 <= t <= b + 3 for a, b in grads):
            continue  # inside a gradual transition: the gradual model decides there
        xc.append(sf.cut_features(ev, t))
        yc.append(int(any(abs(t - c) <= 2 for c in cuts)))
    for a, b, conf in sf.gradual_candidates(ev):
        xg.append(sf.gradual_features(ev, a, b, conf))
        # Positive only when it overlaps a true gradual transition (a run on a cut is the cut's business).
        yg.append(int(any(a <= gb and b >= ga for ga, gb in grads)))
    return xc, yc, xg, yg


def stacked(items: list[tuple[sf.Evidence, Truth]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut features, cut labels, gradual features, gradual labels of all the videos."""
    xc, yc, xg, yg = [], [], [], []
    for ev, truth in items:
        a, b, c, d = labelled(ev, truth)
        xc += a
        yc += b
        xg += c
        yg += d
    return np.array(xc), np.array(yc, float), np.array(xg), np.array(yg, float)


def fit(items: list[tuple[sf.Evidence, Truth]], l2: float) -> sf.FusionWeights:
    xc_, yc_, xg_, yg_ = stacked(items)
    return sf.FusionWeights(
        learned=sf.fit_logistic(xc_[:, : sf.LEARNED_COLUMNS], yc_, l2=l2),
        classical=sf.fit_logistic(xc_[:, sf.LEARNED_COLUMNS :], yc_, l2=l2),
        prior=float(yc_.mean()),
        gradual=sf.fit_logistic(xg_, yg_, l2=l2),
    )


def cross_validate(items: list[tuple[sf.Evidence, Truth]], l2s: list[float], folds: int = 4) -> None:
    """Out-of-fold F1 per L2 strength, folds across the tuning videos (video i is in fold i % folds)."""
    from shots import aggregate, match

    for l2 in l2s:
        rows = []
        for k in range(folds):
            weights = fit([it for i, it in enumerate(items) if i % folds != k], l2)
            for ev, truth in (it for i, it in enumerate(items) if i % folds == k):
                found = sf.fuse(ev, weights=weights)
                rows.append(match(truth, [(t.start_frame, t.end_frame) for t in found]))
        agg = aggregate(rows)
        per = ", ".join(f"{k} {v[1]}/{v[2]}" for k, v in agg["per"].items())
        print(
            f"l2 {l2}: out-of-fold P {agg['precision']:.3f} R {agg['recall']:.3f} F1 {agg['f1']:.3f} ({per}; "
            f"flashes fired {agg['flash_fired']}/{agg['flashes']}, fast motion {agg['motion_fired']}/{agg['motions']}, "
            f"camera-motion shots {agg['camera_fired']}/{agg['cameras']})"
        )


def reliability(p: np.ndarray, y: np.ndarray) -> str:
    rows = []
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
        m = (p >= lo) & (p < lo + 0.2 + (1e-9 if lo == 0.8 else 0))
        if m.any():
            rows.append(f"  p in [{lo:.1f}, {lo + 0.2:.1f}): n={int(m.sum())}, true share {y[m].mean():.2f}")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=TUNING_SEED)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument(
        "--montages", type=int, default=12, help="close-up montages (music-video-like) added to the videos"
    )
    ap.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "dataflux_shots_corpus"
    )
    ap.add_argument("--l2", type=float, default=0.3)
    ap.add_argument(
        "--cv", default=None, help="comma-separated L2 strengths to cross-validate instead of fitting"
    )
    args = ap.parse_args()
    if args.seed != TUNING_SEED:
        raise SystemExit(f"fit only on the tuning seed {TUNING_SEED}: other seeds are held out")
    corpus = generate_corpus(
        args.corpus / f"seed{args.seed}", count=args.videos, seed=args.seed, montages=args.montages
    )
    if args.cv:
        cross_validate([(evidence_of(p), t) for p, t in corpus], [float(x) for x in args.cv.split(",")])
        return
    items = [(evidence_of(p), t) for p, t in corpus]
    w = fit(items, args.l2)
    xc_, yc_, xg_, yg_ = stacked(items)
    wl, wcl, prior, wg = w.learned, w.classical, w.prior, w.gradual
    np.set_printoptions(precision=4, suppress=True)
    print(
        f"cut candidates {len(yc_)} ({int(yc_.sum())} true), gradual candidates {len(yg_)} ({int(yg_.sum())} true)"
    )
    print("features", sf.CUT_FEATURES, "+ intercept")
    print("CUT_LEARNED_WEIGHTS = np.array(" + np.array2string(wl, separator=", ") + ")")
    print("CUT_CLASSICAL_WEIGHTS = np.array(" + np.array2string(wcl, separator=", ") + ")")
    print(f"CUT_PRIOR = {prior:.4f}")
    print("features", sf.GRADUAL_FEATURES, "+ intercept")
    print("GRADUAL_WEIGHTS = np.array(" + np.array2string(wg, separator=", ") + ")")
    pc = sf.cut_probability(xc_, wl, wcl, prior)
    print("reliability (tuning set, in-sample), cuts:\n" + reliability(pc, yc_))
    print("gradual:\n" + reliability(sf._score(xg_, wg), yg_))


if __name__ == "__main__":
    main()
