"""Contact sheet of the real clips' detected shots (fused detector): docs/shots-real-clips.png.

One tile per detected shot (its middle frame), labelled with the shot's frame range and the confidence of the
boundary that opened it; a red label marks a shot whose opening boundary is not in the ground truth.
Usage: .venv/bin/python bench/shots_sheet.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shots import CUT_TOLERANCE, real_clips

from dataflux_pipelines.media.shot_detector import detect_video

OUT = Path(__file__).resolve().parents[1] / "docs" / "shots-real-clips.png"
TILE_W, COLS = 96, 14


def frames_at(path: Path, wanted: set[int], height: int) -> dict[int, np.ndarray]:
    out = {}
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        w = TILE_W
        for i, f in enumerate(c.decode(stream)):
            if i in wanted:
                out[i] = f.reformat(width=w, height=height, format="rgb24").to_ndarray()
    return out


def main() -> None:
    blocks = []
    for path, truth, ignore in real_clips():
        det = detect_video(path, detector="fused")
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            h = max(2, round(TILE_W * s.height / s.width / 2) * 2)
        mids = {(sh.start_frame + sh.end_frame) // 2 for sh in det.shots}
        pics = frames_at(path, mids, h)
        ranges = [(g["start_frame"], g["end_frame"]) for g in truth.transitions]
        conf = {}
        for t in det.transitions:
            b = t.start_frame if t.type == "cut" else (t.start_frame + t.end_frame + 1) // 2
            conf[b] = (t.type, t.confidence, t.start_frame, t.end_frame)
        rows = (len(det.shots) + COLS - 1) // COLS
        img = Image.new("RGB", (COLS * (TILE_W + 4), 22 + rows * (h + 26)), "white")
        d = ImageDraw.Draw(img)
        found = sum(
            1
            for a, b in ranges
            if any(s - CUT_TOLERANCE <= b and e + CUT_TOLERANCE >= a for _, _, s, e in conf.values())
        )
        d.text(
            (4, 4),
            f"{path.name}: {len(det.shots)} shots detected (fused), {found}/{len(ranges)} true boundaries found",
            fill="black",
        )
        for k, sh in enumerate(det.shots):
            x, y = (k % COLS) * (TILE_W + 4), 22 + (k // COLS) * (h + 26)
            img.paste(Image.fromarray(pics[(sh.start_frame + sh.end_frame) // 2]), (x, y + 24))
            c = conf.get(sh.start_frame)
            ok = True
            if c is not None:
                ok = any(c[2] - CUT_TOLERANCE <= b and c[3] + CUT_TOLERANCE >= a for a, b in ranges) or any(
                    a <= c[2] <= b for a, b in ignore
                )
            label = f"{sh.start_frame}-{sh.end_frame}"
            sub = "start" if c is None else f"{c[0][:4]} {c[1]:.2f}"
            d.text((x + 1, y), label, fill="black" if ok else "red")
            d.text((x + 1, y + 11), sub, fill="black" if ok else "red")
        blocks.append(img)
    width = max(b.width for b in blocks)
    sheet = Image.new("RGB", (width, sum(b.height + 8 for b in blocks)), "white")
    y = 0
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height + 8
    OUT.parent.mkdir(exist_ok=True)
    sheet.save(OUT)
    print(OUT, sheet.size)


if __name__ == "__main__":
    main()
