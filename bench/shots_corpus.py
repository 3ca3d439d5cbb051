"""Synthetic shot-detection corpus with exact ground truth: textured moving scenes, cuts, dissolves, fades, flashes, whip pans."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT, FPS = 320, 180, 25


@dataclass
class Truth:
    """Ground truth of one generated video."""

    frames: int
    fps: float
    transitions: list[dict] = field(default_factory=list)  # {"type", "start_frame", "end_frame", "similar"}
    flashes: list[list[int]] = field(default_factory=list)  # [first, last] flashed frame
    fast_motion: list[list[int]] = field(
        default_factory=list
    )  # [first, last] frame of fast motion / whip pan
    description: str = ""


def make_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured landscape: multi-octave colour noise with a random palette plus drawn shapes (edges)."""
    acc = np.zeros((h, w, 3), np.float32)
    for octave, weight in ((4, 1.0), (12, 0.6), (36, 0.35), (100, 0.2)):
        small = rng.random((max(2, h * octave // w), octave, 3)).astype(np.float32)
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        acc += weight * (np.asarray(img, np.float32) / 255.0 - 0.5)
    base = rng.random(3).astype(np.float32) * 0.6 + 0.2
    tint = (rng.random((3, 3)).astype(np.float32) - 0.5) * 1.2 + np.eye(3, dtype=np.float32)
    tex = np.clip(base + acc @ tint, 0, 1)
    img = Image.fromarray((tex * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(25, 60))):
        x, y = rng.integers(0, w), rng.integers(0, h)
        s = int(rng.integers(6, 40))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle([x, y, x + s, y + s * 0.7], fill=colour)
        elif kind == 1:
            draw.ellipse([x, y, x + s, y + s], outline=colour, width=3)
        else:
            draw.line([x, y, x + s * 3, y + s], fill=colour, width=2)
    return np.asarray(img.filter(ImageFilter.SMOOTH), np.uint8)


def make_sprite(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured disc (RGB, alpha mask)."""
    tex = make_texture(rng, size, size)
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 2 - 1) ** 2
    return tex, mask


class Scene:
    """A place: a large texture the camera pans over, with objects moving across it."""

    def __init__(self, rng: np.random.Generator, w: int = WIDTH, h: int = HEIGHT) -> None:
        self.w, self.h = w, h
        self.tex = make_texture(rng, h * 3, w * 4)
        self.sprites = [
            make_sprite(rng, int(rng.integers(h // 6, h // 3))) for _ in range(int(rng.integers(1, 4)))
        ]

    def render(self, cam: tuple[float, float], objects: list[tuple[int, float, float]]) -> np.ndarray:
        """Crop the texture at the camera position (wrapping) and paste the objects."""
        th, tw = self.tex.shape[:2]
        x0 = int(np.round(cam[0])) % tw
        # Vertical camera position bounces at the texture's edges: wrapping would be a hidden cut.
        period = 2 * (th - self.h)
        yy = int(np.round(cam[1])) % period
        y0 = yy if yy <= th - self.h else period - yy
        xs = (np.arange(self.w) + x0) % tw
        frame = self.tex[y0 : y0 + self.h][:, xs].copy()
        for idx, ox, oy in objects:
            spr, mask = self.sprites[idx % len(self.sprites)]
            s = spr.shape[0]
            x, y = int(ox), int(oy)
            fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + s, self.w), min(y + s, self.h)
            if fx0 >= fx1 or fy0 >= fy1:
                continue
            sub = mask[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
            frame[fy0:fy1, fx0:fx1][sub] = spr[fy0 - y : fy1 - y, fx0 - x : fx1 - x][sub]
        return frame


class Shot:
    """A continuous take: a scene, a camera path and moving objects; optional whip pan and fast object."""

    def __init__(
        self, rng: np.random.Generator, scene: Scene, cam0: tuple[float, float], length: int
    ) -> None:
        self.scene, self.length = scene, length
        speed = rng.uniform(0.0, 3.0)
        angle = rng.uniform(0, 2 * np.pi)
        self.cam0 = cam0
        self.vel = (speed * np.cos(angle), 0.4 * speed * np.sin(angle))
        self.objects = [
            (
                i,
                rng.uniform(-20, scene.w),
                rng.uniform(0, scene.h * 0.7),
                rng.uniform(-4, 4),
                rng.uniform(-1.5, 1.5),
            )
            for i in range(len(scene.sprites))
        ]
        self.whip: tuple[int, int, float] | None = None  # start, length, px/frame
        self.fast: tuple[int, int, float] | None = None

    def cam_at(self, t: float) -> tuple[float, float]:
        x = self.cam0[0] + self.vel[0] * t
        y = self.cam0[1] + self.vel[1] * t
        if self.whip is not None:
            start, n, speed = self.whip
            # Smooth (raised-cosine) velocity profile, like a real whip pan.
            tt = np.clip((t - start) / n, 0.0, 1.0)
            x += speed * n * (tt - np.sin(2 * np.pi * tt) / (2 * np.pi))
        return x, y

    def frame(self, t: int) -> np.ndarray:
        objs = [(i, ox + vx * t, oy + vy * t) for i, ox, oy, vx, vy in self.objects]
        objs = [(i, (x + 60) % (self.scene.w + 60) - 60, y) for i, x, y in objs]
        if self.fast is not None:
            start, n, speed = self.fast
            if start <= t < start + n:
                objs.append((0, -60 + speed * (t - start), self.scene.h * 0.3))
        blur = self.whip is not None and self.whip[0] - 1 <= t <= self.whip[0] + self.whip[1]
        if not blur:
            return self.scene.render(self.cam_at(t), objs)
        # Motion blur: average sub-frame renders along the pan.
        subs = [self.scene.render(self.cam_at(t + k / 6), objs).astype(np.float32) for k in range(6)]
        return np.clip(np.mean(subs, axis=0), 0, 255).astype(np.uint8)


def write_video(path: Path, frames, fps: int = FPS, crf: int = 20) -> None:
    """Encode RGB frames as H.264 MP4."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": "50"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def build_video(seed: int, seconds: float) -> tuple[list[np.ndarray], Truth]:
    """Render one video: a random sequence of shots joined by cuts, similar-scene cuts, dissolves and fades."""
    rng = np.random.default_rng(seed)
    scenes = [Scene(rng) for _ in range(4)]
    total = int(seconds * FPS)
    frames: list[np.ndarray] = []
    truth = Truth(frames=0, fps=float(FPS))
    scene_idx = 0
    cam = (rng.uniform(0, 800), rng.uniform(0, 300))
    prev_shot: Shot | None = None
    prev_t = 0
    while len(frames) < total:
        length = int(rng.integers(60, 160))
        shot = Shot(rng, scenes[scene_idx], cam, length)
        kind = (
            "cut" if prev_shot is None else str(rng.choice(["cut", "dissolve", "fade"], p=[0.56, 0.24, 0.2]))
        )
        start = len(frames)
        offset = 0  # shot-local frames already shown inside the incoming transition
        if prev_shot is not None:
            if kind == "cut":
                similar = shot.scene is prev_shot.scene
                truth.transitions.append(
                    {"type": "cut", "start_frame": start, "end_frame": start, "similar": similar}
                )
            elif kind == "dissolve":
                offset = int(rng.integers(12, 40))
                # The previous shot keeps moving while it blends into the first frames of this one.
                for k in range(offset):
                    alpha = (k + 1) / (offset + 1)
                    a = prev_shot.frame(prev_t + k).astype(np.float32)
                    b = shot.frame(k).astype(np.float32)
                    frames.append(np.clip((1 - alpha) * a + alpha * b + 0.5, 0, 255).astype(np.uint8))
                truth.transitions.append(
                    {
                        "type": "dissolve",
                        "start_frame": start,
                        "end_frame": start + offset - 1,
                        "similar": shot.scene is prev_shot.scene,
                    }
                )
            elif kind == "fade":
                n_out, n_black = int(rng.integers(8, 25)), int(rng.integers(0, 8))
                offset = int(rng.integers(8, 25))
                for k in range(n_out):
                    g = 1 - (k + 1) / (n_out + 1)
                    frames.append((prev_shot.frame(prev_t + k).astype(np.float32) * g).astype(np.uint8))
                frames.extend(np.zeros((HEIGHT, WIDTH, 3), np.uint8) for _ in range(n_black))
                for k in range(offset):
                    g = (k + 1) / (offset + 1)
                    frames.append((shot.frame(k).astype(np.float32) * g).astype(np.uint8))
                truth.transitions.append(
                    {"type": "fade", "start_frame": start, "end_frame": len(frames) - 1, "similar": False}
                )
        body = len(frames) - offset  # global index of shot-local frame 0
        # Events inside the shot, away from its ends so they cannot mix with transitions.
        lo, hi = offset + 12, length - 30
        roll = rng.random()
        if hi - lo > 10 and roll < 0.3:
            shot.whip = (
                int(rng.integers(lo, hi)),
                int(rng.integers(6, 12)),
                float(rng.choice([-1, 1]) * rng.uniform(25, 45)),
            )
            truth.fast_motion.append([body + shot.whip[0] - 1, body + shot.whip[0] + shot.whip[1] + 1])
        elif hi - lo > 10 and roll < 0.6:
            shot.fast = (int(rng.integers(lo, hi)), 14, float(rng.uniform(25, 40)))
            truth.fast_motion.append([body + shot.fast[0], body + shot.fast[0] + shot.fast[1] - 1])
        flash: tuple[int, int] | None = None
        if hi - lo > 10 and rng.random() < 0.4:
            flash = (int(rng.integers(lo, hi)), int(rng.integers(1, 4)))
            truth.flashes.append([body + flash[0], body + flash[0] + flash[1] - 1])
        for t in range(offset, length):
            img = shot.frame(t)
            if flash is not None and flash[0] <= t < flash[0] + flash[1]:
                strength = rng.uniform(0.55, 0.9)
                img = (img.astype(np.float32) * (1 - strength) + 255 * strength).astype(np.uint8)
            frames.append(img)
        prev_shot, prev_t = shot, length
        # Next shot: a similar-scene cut keeps the scene and jumps the camera a little; otherwise a new scene.
        if rng.random() < 0.35:
            end_cam = shot.cam_at(length)
            cam = (end_cam[0] + rng.choice([-1, 1]) * rng.uniform(90, 160), end_cam[1] + rng.uniform(-40, 40))
        else:
            scene_idx = (scene_idx + int(rng.integers(1, len(scenes)))) % len(scenes)
            cam = (rng.uniform(0, 800), rng.uniform(0, 300))
    truth.frames = len(frames)
    truth.description = f"seed {seed}: {len(frames)} frames {WIDTH}x{HEIGHT}@{FPS}"
    return frames, truth


def generate_corpus(folder: Path, count: int = 12, seed: int = 7) -> list[tuple[Path, Truth]]:
    """Write `count` videos of 20-60 s with ground-truth JSON beside each; reuses files already there."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        seconds = float(rng.uniform(20, 52))  # the last shot may run up to 6 s past this
        path = folder / f"shots_{i:02d}.mp4"
        truth_path = path.with_suffix(".json")
        if path.exists() and truth_path.exists():
            truth = Truth(**json.loads(truth_path.read_text()))
        else:
            frames, truth = build_video(seed * 1000 + i, seconds)
            write_video(path, frames)
            truth_path.write_text(json.dumps(asdict(truth)))
        out.append((path, truth))
    return out
