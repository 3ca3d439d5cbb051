"""Synthetic shot-detection corpus with exact ground truth: textured moving scenes, cuts, dissolves, fades, flashes,
whip pans, and sustained camera motion inside shots (slow/fast pans, zoom, pan-and-zoom, hand-held shake, lighting
changes, large foreground objects) that must never produce a boundary."""

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
    # [first, last, kind]: a shot body with sustained camera motion, lighting change or a big foreground object
    camera_motion: list[list] = field(default_factory=list)
    description: str = ""

    def transition(self, kind: str, start: int, end: int, similar: bool) -> None:
        self.transitions.append({"type": kind, "start_frame": start, "end_frame": end, "similar": similar})


def make_texture(
    rng: np.random.Generator, h: int, w: int, palette: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """A textured landscape: multi-octave colour noise with a random palette (or the given (base, tint)) plus drawn
    shapes (edges)."""
    acc = np.zeros((h, w, 3), np.float32)
    for octave, weight in ((4, 1.0), (12, 0.6), (36, 0.35), (100, 0.2)):
        small = rng.random((max(2, h * octave // w), octave, 3)).astype(np.float32)
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        acc += weight * (np.asarray(img, np.float32) / 255.0 - 0.5)
    base = rng.random(3).astype(np.float32) * 0.6 + 0.2
    tint = (rng.random((3, 3)).astype(np.float32) - 0.5) * 1.2 + np.eye(3, dtype=np.float32)
    if palette is not None:
        base = palette[0] + (base - 0.5) * 0.08  # a slight variation of one shared palette
        tint = palette[1]
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

    def __init__(
        self,
        rng: np.random.Generator,
        w: int = WIDTH,
        h: int = HEIGHT,
        palette: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.w, self.h = w, h
        self.tex = make_texture(rng, h * 3, w * 4, palette)
        self.sprites = [
            make_sprite(rng, int(rng.integers(h // 6, h // 3))) for _ in range(int(rng.integers(1, 4)))
        ]

    def render(
        self, cam: tuple[float, float], objects: list[tuple[int, float, float]], zoom: float = 1.0
    ) -> np.ndarray:
        """Crop the texture at the camera position (wrapping) and paste the objects; zoom > 1 magnifies."""
        th, tw = self.tex.shape[:2]
        cw, ch = (self.w, self.h) if abs(zoom - 1.0) < 1e-3 else (int(self.w / zoom), int(self.h / zoom))
        ch = min(ch, th - 2)
        x0 = int(np.round(cam[0])) % tw
        # Vertical camera position bounces at the texture's edges: wrapping would be a hidden cut.
        period = 2 * (th - ch)
        yy = int(np.round(cam[1])) % period
        y0 = yy if yy <= th - ch else period - yy
        xs = (np.arange(cw) + x0) % tw
        frame = self.tex[y0 : y0 + ch][:, xs]
        if (cw, ch) != (self.w, self.h):
            frame = np.asarray(Image.fromarray(frame).resize((self.w, self.h), Image.BILINEAR))
        frame = frame.copy()
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
        self.motion = "plain"
        self.zoom_rate = 0.0  # log-zoom change per frame
        self.shake: list[tuple[float, float, float, float]] = []  # (amp x, amp y, Hz, phase) components
        self.light: tuple[int, int, np.ndarray] | None = None  # start, length, final per-channel gain
        self.big: tuple[int, float, float, float] | None = None  # foreground disc: start, x speed, y, size
        self.zoom0 = 1.0  # base magnification (a close-up)
        # A close-up's subject: a large disc held near (x, y) that moves with the camera shake: (x, y, size)
        self.subject: tuple[float, float, float] | None = None

    def set_motion(self, rng: np.random.Generator, kind: str) -> None:
        """Sustained camera motion (or change within the shot) over the whole take."""
        self.motion = kind
        direction = rng.uniform(0, 2 * np.pi)
        if kind == "slow_pan":
            speed = rng.uniform(0.8, 3.0)
            self.vel = (speed * np.cos(direction), 0.5 * speed * np.sin(direction))
        elif kind == "fast_pan":
            speed = rng.uniform(7.0, 16.0)
            self.vel = (speed * np.sign(np.cos(direction)), rng.uniform(-1.0, 1.0))
        elif kind in ("zoom", "pan_zoom"):
            self.zoom_rate = float(rng.choice([-1, 1]) * rng.uniform(0.004, 0.012))
            speed = rng.uniform(1.0, 4.0) if kind == "pan_zoom" else rng.uniform(0.0, 0.3)
            self.vel = (speed * np.cos(direction), 0.4 * speed * np.sin(direction))
        elif kind == "handheld":
            self.vel = (rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.3))
            self.shake = [
                (
                    rng.uniform(1.5, 6.0),
                    rng.uniform(1.0, 4.0),
                    rng.uniform(0.5, 3.5),
                    rng.uniform(0, 2 * np.pi),
                )
                for _ in range(3)
            ]
        elif kind == "lighting":
            start = int(rng.integers(5, max(6, self.length // 3)))
            gain = rng.uniform(0.45, 1.35, 3) if rng.random() < 0.5 else np.full(3, rng.uniform(0.45, 1.4))
            self.light = (start, int(rng.integers(15, 45)), gain.astype(np.float32))
        elif kind == "foreground":
            self.big = (
                int(rng.integers(0, max(1, self.length // 3))),
                float(rng.choice([-1, 1]) * rng.uniform(4, 9)),
                rng.uniform(0.0, self.scene.h * 0.4),
                rng.uniform(0.6, 0.95) * self.scene.h,
            )

    def zoom_at(self, t: float) -> float:
        # Bounded between 0.75x and 1.9x (the texture is only so large).
        z = np.exp(self.zoom_rate * t) * (1.15 if self.zoom_rate < 0 else 1.0) * self.zoom0
        return float(np.clip(z, 0.75, 1.9))

    def cam_at(self, t: float) -> tuple[float, float]:
        x = self.cam0[0] + self.vel[0] * t
        y = self.cam0[1] + self.vel[1] * t
        for ax, ay, hz, ph in self.shake:
            x += ax * np.sin(2 * np.pi * hz * t / FPS + ph)
            y += ay * np.sin(2 * np.pi * hz * 1.3 * t / FPS + 2 * ph)
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
        if blur:
            # Motion blur: average sub-frame renders along the pan.
            subs = [self.scene.render(self.cam_at(t + k / 6), objs).astype(np.float32) for k in range(6)]
            img = np.clip(np.mean(subs, axis=0), 0, 255).astype(np.uint8)
        elif self.motion == "fast_pan":
            # A fast pan blurs along its direction: two sub-frame renders.
            subs = [
                self.scene.render(self.cam_at(t + k / 3), objs, self.zoom_at(t)).astype(np.float32)
                for k in range(3)
            ]
            img = np.clip(np.mean(subs, axis=0), 0, 255).astype(np.uint8)
        else:
            img = self.scene.render(self.cam_at(t), objs, self.zoom_at(t))
        if self.light is not None:
            start, n, gain = self.light
            k = float(np.clip((t - start) / n, 0.0, 1.0))
            img = np.clip(img.astype(np.float32) * (1 + (gain - 1) * k), 0, 255).astype(np.uint8)
        if self.big is not None:
            start, vx, y, size = self.big
            x = -size + vx * (t - start) if vx > 0 else self.scene.w + vx * (t - start)
            self._paste_disc(img, x, y, size)
        if self.subject is not None:
            x, y, size = self.subject
            cx, cy = self.cam_at(t)
            # The subject moves against the background at a fraction of the camera's shake and drift.
            dx, dy = cx - self.cam0[0], cy - self.cam0[1]
            self._paste_disc(img, x - 0.6 * dx, y - 0.6 * dy, size)
        return img

    def _paste_disc(self, img: np.ndarray, x: float, y: float, size: float) -> None:
        """Paste the scene's first sprite scaled to `size` pixels with its top-left corner at (x, y)."""
        spr, mask = self.scene.sprites[0]
        s = int(size)
        big = np.asarray(Image.fromarray(spr).resize((s, s), Image.BILINEAR))
        bmask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((s, s))) > 127
        ix, iy = int(x), int(y)
        fx0, fy0 = max(ix, 0), max(iy, 0)
        fx1, fy1 = min(ix + s, self.scene.w), min(iy + s, self.scene.h)
        if fx0 < fx1 and fy0 < fy1:
            sub = bmask[fy0 - iy : fy1 - iy, fx0 - ix : fx1 - ix]
            img[fy0:fy1, fx0:fx1][sub] = big[fy0 - iy : fy1 - iy, fx0 - ix : fx1 - ix][sub]


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


MOTIONS = ("slow_pan", "fast_pan", "zoom", "pan_zoom", "handheld", "lighting", "foreground")


def dissolve_frames(prev_shot: Shot, prev_t: int, shot: Shot, n: int) -> list[np.ndarray]:
    """n blended frames: the previous shot keeps moving while it blends into the first n frames of this one."""
    out = []
    for k in range(n):
        alpha = (k + 1) / (n + 1)
        a = prev_shot.frame(prev_t + k).astype(np.float32)
        b = shot.frame(k).astype(np.float32)
        out.append(np.clip((1 - alpha) * a + alpha * b + 0.5, 0, 255).astype(np.uint8))
    return out


def fade_frames(
    prev_shot: Shot, prev_t: int, shot: Shot, n_out: int, n_black: int, n_in: int
) -> list[np.ndarray]:
    """Fade out over n_out frames, n_black black frames, fade in over the first n_in frames of the next shot."""
    out = []
    for k in range(n_out):
        g = 1 - (k + 1) / (n_out + 1)
        out.append((prev_shot.frame(prev_t + k).astype(np.float32) * g).astype(np.uint8))
    out.extend(np.zeros((HEIGHT, WIDTH, 3), np.uint8) for _ in range(n_black))
    for k in range(n_in):
        g = (k + 1) / (n_in + 1)
        out.append((shot.frame(k).astype(np.float32) * g).astype(np.uint8))
    return out


def flashed_frames(
    rng: np.random.Generator,
    shot: Shot,
    offset: int,
    length: int,
    flash: tuple[int, int] | None,
    strength: tuple[float, float],
) -> list[np.ndarray]:
    """The shot's frames from `offset` on, with a white flash over `flash` = (first frame, frame count); each
    flash frame draws its own strength from `strength`."""
    frames = []
    for t in range(offset, length):
        img = shot.frame(t)
        if flash is not None and flash[0] <= t < flash[0] + flash[1]:
            amount = rng.uniform(*strength)
            img = (img.astype(np.float32) * (1 - amount) + 255 * amount).astype(np.uint8)
        frames.append(img)
    return frames


def next_camera(
    rng: np.random.Generator,
    shot: Shot,
    length: int,
    scene_idx: int,
    n_scenes: int,
    same_scene: float,
    jump: tuple[float, float],
    dy: float,
) -> tuple[int, tuple[float, float]]:
    """The next shot's scene and camera: with probability `same_scene` the same scene seen from a camera
    jumped sideways by `jump` pixels (and up to `dy` vertically) from where this shot ended; else another scene."""
    if rng.random() < same_scene:
        end_cam = shot.cam_at(length)
        return scene_idx, (
            end_cam[0] + rng.choice([-1, 1]) * rng.uniform(*jump),
            end_cam[1] + rng.uniform(-dy, dy),
        )
    scene_idx = (scene_idx + int(rng.integers(1, n_scenes))) % n_scenes
    return scene_idx, (rng.uniform(0, 800), rng.uniform(0, 300))


def build_video(seed: int, seconds: float, camera_motion: float = 0.6) -> tuple[list[np.ndarray], Truth]:
    """Render one video: a random sequence of shots joined by cuts, similar-scene cuts, dissolves and fades;
    a `camera_motion` share of the shots has sustained camera motion or a change within the take."""
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
        if rng.random() < camera_motion:
            shot.set_motion(rng, str(rng.choice(MOTIONS)))
        kind = (
            "cut" if prev_shot is None else str(rng.choice(["cut", "dissolve", "fade"], p=[0.56, 0.24, 0.2]))
        )
        start = len(frames)
        offset = 0  # shot-local frames already shown inside the incoming transition
        if prev_shot is not None:
            if kind == "cut":
                similar = shot.scene is prev_shot.scene
                truth.transition("cut", start, start, similar)
            elif kind == "dissolve":
                offset = int(rng.integers(12, 40))
                frames += dissolve_frames(prev_shot, prev_t, shot, offset)
                truth.transition("dissolve", start, start + offset - 1, shot.scene is prev_shot.scene)
            elif kind == "fade":
                n_out, n_black = int(rng.integers(8, 25)), int(rng.integers(0, 8))
                offset = int(rng.integers(8, 25))
                frames += fade_frames(prev_shot, prev_t, shot, n_out, n_black, offset)
                truth.transition("fade", start, len(frames) - 1, False)
        body = len(frames) - offset  # global index of shot-local frame 0
        # Events inside the shot, away from its ends so they cannot mix with transitions.
        lo, hi = offset + 12, length - 30
        if shot.motion != "plain":
            # Scored away from the shot's ends: a boundary there belongs to the transitions.
            truth.camera_motion.append([body + offset + 3, body + length - 4, shot.motion])
        roll = rng.random() if shot.motion in ("plain", "slow_pan", "lighting") else 1.0
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
        frames += flashed_frames(rng, shot, offset, length, flash, (0.55, 0.9))
        prev_shot, prev_t = shot, length
        # Next shot: a similar-scene cut keeps the scene and jumps the camera a little; otherwise a new scene.
        scene_idx, cam = next_camera(rng, shot, length, scene_idx, len(scenes), 0.35, (90, 160), 40)
    truth.frames = len(frames)
    truth.description = f"seed {seed}: {len(frames)} frames {WIDTH}x{HEIGHT}@{FPS}"
    return frames, truth


def build_montage(seed: int, seconds: float) -> tuple[list[np.ndarray], Truth]:
    """Render a music-video-like montage: short hand-held close-ups (a large subject over a magnified background,
    every scene in one shared palette) joined mostly by hard cuts, half of them between two views of the same
    scene, with some dissolves between two views of the same scene and the odd fade. Cuts here are small steps
    against a lot of in-shot motion, the case the standard corpus lacks."""
    rng = np.random.default_rng(seed)
    base = rng.random(3).astype(np.float32) * 0.5 + 0.25
    tint = (rng.random((3, 3)).astype(np.float32) - 0.5) * 0.8 + np.eye(3, dtype=np.float32)
    scenes = [Scene(rng, palette=(base, tint)) for _ in range(3)]
    total = int(seconds * FPS)
    frames: list[np.ndarray] = []
    truth = Truth(frames=0, fps=float(FPS))
    scene_idx = 0
    cam = (rng.uniform(0, 800), rng.uniform(0, 300))
    prev_shot: Shot | None = None
    prev_t = 0
    while len(frames) < total:
        length = int(rng.integers(14, 70))
        shot = Shot(rng, scenes[scene_idx], cam, length)
        shot.set_motion(rng, "handheld")
        shot.motion = "closeup"
        shot.zoom0 = float(rng.uniform(1.3, 1.85))
        shot.zoom_rate = float(rng.choice([0.0, rng.uniform(-0.006, 0.006)]))
        shot.shake = [(ax * 1.5, ay * 1.5, hz, ph) for ax, ay, hz, ph in shot.shake]
        size = float(rng.uniform(0.55, 1.0) * HEIGHT)
        shot.subject = (rng.uniform(0, WIDTH - size), rng.uniform(-0.2 * size, HEIGHT - 0.7 * size), size)
        kind = (
            "cut" if prev_shot is None else str(rng.choice(["cut", "dissolve", "fade"], p=[0.86, 0.1, 0.04]))
        )
        if kind == "dissolve" and shot.scene is not prev_shot.scene:
            kind = "cut"  # dissolves here are between two views of one scene
        start, offset = len(frames), 0
        if prev_shot is not None:
            similar = shot.scene is prev_shot.scene
            if kind == "cut":
                truth.transition("cut", start, start, similar)
            elif kind == "dissolve":
                offset = int(rng.integers(8, 30))
                frames += dissolve_frames(prev_shot, prev_t, shot, offset)
                truth.transition("dissolve", start, start + offset - 1, True)
            else:
                n_out, n_black, offset = (
                    int(rng.integers(6, 18)),
                    int(rng.integers(0, 5)),
                    int(rng.integers(6, 18)),
                )
                frames += fade_frames(prev_shot, prev_t, shot, n_out, n_black, offset)
                truth.transition("fade", start, len(frames) - 1, False)
        body = len(frames) - offset
        if length - offset > 12:
            truth.camera_motion.append([body + offset + 3, body + length - 4, shot.motion])
        flash: tuple[int, int] | None = None
        if length - offset > 24 and rng.random() < 0.15:
            flash = (int(rng.integers(offset + 8, length - 10)), int(rng.integers(1, 3)))
            truth.flashes.append([body + flash[0], body + flash[0] + flash[1] - 1])
        frames += flashed_frames(rng, shot, offset, length, flash, (0.4, 0.8))
        prev_shot, prev_t = shot, length
        # Half the cuts stay in the scene: the camera jumps a little (another angle on the same place).
        scene_idx, cam = next_camera(rng, shot, length, scene_idx, len(scenes), 0.5, (40, 140), 30)
    truth.frames = len(frames)
    truth.description = f"montage seed {seed}: {len(frames)} frames {WIDTH}x{HEIGHT}@{FPS}"
    return frames, truth


CORPUS_VERSION = 2  # bump when the generator changes: cached files of another version are rebuilt


def generate_corpus(
    folder: Path,
    count: int = 8,
    seed: int = 7,
    seconds: tuple[float, float] = (18, 34),
    montages: int = 0,
) -> list[tuple[Path, Truth]]:
    """Write `count` videos (length drawn from `seconds`) and then `montages` close-up montages (`build_montage`)
    with ground-truth JSON beside each; reuses files there. The first `count` are the same whatever `montages` is."""
    folder = folder / f"v{CORPUS_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    # The last shot may run up to 6 s past the drawn length.
    jobs = [
        (f"shots_{i:02d}", build_video, seed * 1000 + i, float(rng.uniform(*seconds))) for i in range(count)
    ]
    for i in range(montages):
        video_seed = seed * 1000 + 500 + i
        length = float(np.random.default_rng(video_seed).uniform(*seconds))
        jobs.append((f"montage_{i:02d}", build_montage, video_seed, length))
    for name, build, video_seed, seconds_i in jobs:
        path = folder / f"{name}.mp4"
        truth_path = path.with_suffix(".json")
        if path.exists() and truth_path.exists():
            truth = Truth(**json.loads(truth_path.read_text()))
        else:
            frames, truth = build(video_seed, seconds_i)
            write_video(path, frames)
            truth_path.write_text(json.dumps(asdict(truth)))
        out.append((path, truth))
    return out
