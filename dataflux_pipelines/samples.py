"""A small, deterministic set of sample media for the demo: videos with real shot changes and
sound, images, a WAV of bursts and silences, a PDF and a Markdown document."""

from __future__ import annotations

import math
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

Frame = Callable[[int, np.random.Generator], np.ndarray]

_W, _H = 320, 180


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:_H, 0:_W].astype(np.float32)
    return x / _W, y / _H


def _sunset(t: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid()
    sky = np.stack([0.95 - 0.3 * y, 0.45 + 0.2 * (1 - y), 0.25 + 0.5 * y], -1)
    sun = np.exp(-(((x - 0.3 - t * 0.004) ** 2) + (y - 0.55) ** 2) / 0.004)[..., None]
    sea = (y > 0.62)[..., None] * np.stack(
        [0.1 + 0.1 * np.sin(40 * x + t * 0.3), 0.2 + 0 * x, 0.45 + 0 * x], -1
    )
    img = np.where(y[..., None] > 0.62, sea, sky) + sun * np.array([1.0, 0.8, 0.3])
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _city(t: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid()
    pan = (x + t * 0.01) % 1.0
    buildings = (np.floor(pan * 14) % 3 + 1) * 0.18
    mask = (1 - y) < buildings[..., None][..., 0]
    windows = (np.floor(pan * 140) % 3 == 0) & (np.floor(y * 60) % 3 == 0) & mask
    img = np.zeros((_H, _W, 3), np.float32)
    img[..., :] = np.stack([0.05 + 0.1 * y, 0.05 + 0.1 * y, 0.2 + 0.2 * y], -1)
    img[mask] = (0.15, 0.15, 0.18)
    img[windows] = (0.95, 0.85, 0.4)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _forest(t: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid()
    leaves = 0.5 + 0.5 * np.sin(25 * x + 3 * np.sin(9 * y + t * 0.15)) * np.cos(21 * y - t * 0.05)
    img = np.stack([0.1 + 0.15 * leaves, 0.3 + 0.5 * leaves, 0.1 + 0.1 * leaves], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _studio(t: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid()
    img = np.stack([0.8 - 0.2 * y, 0.78 - 0.2 * y, 0.75 - 0.2 * y], -1)
    cx = 0.5 + 0.05 * math.sin(t * 0.2)
    head = ((x - cx) ** 2 * 3.2 + (y - 0.4) ** 2) < 0.02
    body = (np.abs(x - cx) < 0.15) & (y > 0.55)
    img[head] = (0.85, 0.65, 0.5)
    img[body] = (0.2, 0.25, 0.6)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _write_video(
    path: Path, shots: list[tuple[Frame, int]], fps: int, tone_hz: list[float], dissolve: int = 0
) -> None:
    import av

    rng = np.random.default_rng(7)
    container = av.open(str(path), mode="w")
    vstream = container.add_stream("libx264", rate=fps)
    vstream.width, vstream.height, vstream.pix_fmt = _W, _H, "yuv420p"
    vstream.options = {"crf": "23", "preset": "veryfast", "g": str(fps * 2), "threads": "1"}
    vstream.thread_count = 1
    astream = container.add_stream("aac", rate=16000)
    astream.layout = "mono"
    frames: list[np.ndarray] = []
    for maker, count in shots:
        start = len(frames)
        shot = [maker(i, rng) for i in range(count)]
        if dissolve and start:
            for k in range(dissolve):
                a = (k + 1) / (dissolve + 1)
                frames[start - dissolve + k] = (
                    (1 - a) * frames[start - dissolve + k].astype(np.float32) + a * shot[k].astype(np.float32)
                ).astype(np.uint8)
            shot = shot[dissolve:]
        frames.extend(shot)
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        for packet in vstream.encode(frame):
            container.mux(packet)
    for packet in vstream.encode():
        container.mux(packet)
    seconds = len(frames) / fps
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    per = len(t) // max(len(tone_hz), 1)
    audio = np.zeros_like(t)
    for k, hz in enumerate(tone_hz):
        seg = slice(k * per, (k + 1) * per)
        audio[seg] = 0.3 * np.sin(2 * np.pi * hz * t[seg]) if hz else 0.0
    audio += 0.01 * rng.standard_normal(len(t))
    from dataflux_pipelines.text_samples import mux_mono_s16

    mux_mono_s16(container, astream, (audio * 32767).astype(np.int16), rate)
    container.close()


def _image(maker: Frame, size: tuple[int, int] = (640, 360)) -> Image.Image:
    rgb = maker(0, np.random.default_rng(3))
    return Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC)


def _write_wav(path: Path) -> None:
    rate = 16000
    rng = np.random.default_rng(11)
    parts = []
    for kind, seconds in [
        ("tone", 1.5),
        ("silence", 1.0),
        ("noise", 1.0),
        ("silence", 0.8),
        ("chord", 2.0),
        ("silence", 0.7),
    ]:
        t = np.arange(int(seconds * rate)) / rate
        if kind == "tone":
            parts.append(0.4 * np.sin(2 * np.pi * 440 * t))
        elif kind == "chord":
            parts.append(
                0.2
                * (
                    np.sin(2 * np.pi * 261.6 * t)
                    + np.sin(2 * np.pi * 329.6 * t)
                    + np.sin(2 * np.pi * 392 * t)
                )
            )
        elif kind == "noise":
            parts.append(0.3 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)))
        else:
            parts.append(0.001 * rng.standard_normal(len(t)))
    samples = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal, valid PDF whose pages carry extractable text (Helvetica, one line per row)."""
    objects: list[bytes] = []
    font_id = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for i, text in enumerate(pages):
        lines = []
        for para in text.split("\n"):
            words, line = para.split(), ""
            for word in words:
                if len(line) + len(word) > 80:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}".strip()
            lines.append(line)
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 {font_id} 0 R >> >> "
            f"/Contents {4 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    from dataflux_pipelines.text_samples import pdf_from_objects

    return pdf_from_objects(objects)


TIDES_PDF = [
    "Field notes on ocean tides. The tide rises and falls twice each day along the northern coast. "
    "Spring tides follow the new and full moon, when the sun and moon pull together; neap tides come "
    "at the quarter moons. Fishermen in the harbour plan their departures around high water.",
    "Lighthouse maintenance log. The keeper cleaned the lamp lens, wound the clockwork and recorded "
    "a storm from the west with waves breaking over the harbour wall. Visibility fell to two miles "
    "in heavy rain before dawn.",
]

RECIPE_MD = """# Sourdough bread recipe

A slow-fermented loaf with a crisp crust and an open crumb.

## Ingredients
- 500 g strong white flour
- 350 g water
- 100 g active sourdough starter
- 10 g salt

## Method
1. Mix the flour and water and rest for an hour (autolyse).
2. Add the starter and salt, then fold the dough every thirty minutes for two hours.
3. Shape, proof overnight in the fridge, and bake in a hot Dutch oven at 250 °C.

Bake until the crust is deep brown and the loaf sounds hollow when tapped.
"""


# Spoken at sample-generation time by espeak-ng (the demo says so when it is missing), and printed on
# the slides: the demo finds these files by what they say and show, not by context text.
SPOKEN_BRIEFING = (
    "Good morning. The ferry to the island leaves at nine thirty from the north pier. "
    "Passengers should bring warm coats because the crossing is windy."
)
SLIDE_TITLE = "Solar panel installation"
SLIDE_LINES = ("Mount the brackets on the roof", "Connect the inverter before the battery")
LAUNCH_SLIDES = (
    ("Product launch", ("A lighter folding bicycle",)),
    ("Battery life", ("Forty hours on one charge",)),
)
LAUNCH_NARRATION = "Our new folding bicycle weighs only nine kilograms and fits under a desk."

# What a person would type when uploading each sample: searchable context.
SAMPLE_CONTEXT = {
    "coast_and_city.mp4": "Sunset over the sea, then the city skyline at night, then a forest; with sound",
    "studio_interview.mp4": "Studio interview with a presenter, a cutaway to the forest, and a closing shot",
    "sunset_over_sea.jpg": "Orange sunset over a calm sea",
    "city_at_night.png": "City buildings with lit windows at night",
    "green_forest.webp": "Dense green forest canopy",
    "colour_test_card.png": "Test card with red, green, blue and yellow circles",
    "tone_bursts.wav": "Test recording: a tone, silences, noise bursts and a chord",
    "harbour_notes.pdf": "Scanned notes from the harbour office",
    "sourdough_recipe.md": "Family bread recipe",
}


def write_samples(folder: Path) -> list[Path]:
    """Write the demo media into `folder` (deterministic: the same bytes every time)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    coast = folder / "coast_and_city.mp4"
    _write_video(
        coast, [(_sunset, 48), (_city, 48), (_forest, 48)], fps=24, tone_hz=[330, 0, 520], dissolve=12
    )
    written.append(coast)
    interview = folder / "studio_interview.mp4"
    _write_video(interview, [(_studio, 60), (_forest, 36), (_studio, 48)], fps=24, tone_hz=[180, 240, 0])
    written.append(interview)
    for name, maker in [
        ("sunset_over_sea.jpg", _sunset),
        ("city_at_night.png", _city),
        ("green_forest.webp", _forest),
    ]:
        path = folder / name
        image = _image(maker)
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
        written.append(path)
    # A gradient test card with shapes: a picture that looks nothing like the others.
    card = Image.new("RGB", (480, 320), (240, 240, 235))
    draw = ImageDraw.Draw(card)
    for i, colour in enumerate([(220, 40, 40), (40, 160, 60), (40, 80, 220), (240, 200, 20)]):
        draw.ellipse((30 + i * 110, 100, 130 + i * 110, 200), fill=colour)
    path = folder / "colour_test_card.png"
    card.save(path)
    written.append(path)
    wav = folder / "tone_bursts.wav"
    _write_wav(wav)
    written.append(wav)
    pdf = folder / "harbour_notes.pdf"
    pdf.write_bytes(pdf_bytes(TIDES_PDF))
    written.append(pdf)
    md = folder / "sourdough_recipe.md"
    md.write_text(RECIPE_MD)
    written.append(md)
    written += write_text_samples(folder)
    return written


def write_text_samples(folder: Path) -> list[Path]:
    """A slide image, a spoken briefing (WAV) and a narrated slide video; the speech needs espeak-ng
    (a missing espeak-ng skips the two spoken files and says so through `EspeakMissing`'s message)."""
    from dataflux_pipelines import text_samples as ts

    written = []
    slide = folder / "solar_slide.png"
    Image.fromarray(ts.slide(SLIDE_TITLE, list(SLIDE_LINES), seed=4)).save(slide)
    written.append(slide)
    if ts.espeak_path() is None:
        return written
    briefing = folder / "ferry_briefing.wav"
    voice = ts.speak(SPOKEN_BRIEFING, speed=145)
    pad = np.zeros(ts.RATE, np.float32)
    ts.write_wav(briefing, np.concatenate([pad, voice, pad]))
    written.append(briefing)
    launch = folder / "bicycle_launch.mp4"
    narration = ts.speak(LAUNCH_NARRATION, speed=145)
    audio = np.concatenate([np.zeros(ts.RATE // 2, np.float32), narration, np.zeros(ts.RATE * 4, np.float32)])
    seconds = len(audio) / ts.RATE
    pictures = [
        (ts.slide(t, list(lines), seed=7 + k), seconds / 2) for k, (t, lines) in enumerate(LAUNCH_SLIDES)
    ]
    ts.write_video(launch, pictures, audio)
    written.append(launch)
    return written
