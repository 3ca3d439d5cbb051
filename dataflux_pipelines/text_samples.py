"""Generated media that says or shows words: espeak-ng speech (plain or sung-style), slides, sign photos,
image-only PDF scans and a slide video with a soundtrack. Used by the demo, the tests and the benches."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

RATE = 16_000
_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
)


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed, so no speech can be generated."""


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def speak(text: str, *, speed: int = 150, pitch: int = 50, voice: str = "en-us") -> np.ndarray:
    """`text` spoken by espeak-ng, as 16 kHz mono float32."""
    exe = espeak_path()
    if exe is None:
        raise EspeakMissing(
            "espeak-ng is not installed (apt-get install espeak-ng); no speech can be generated"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(out), "rb") as wav:
            rate = wav.getframerate()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return _resample(data, rate)


def sing(text: str, *, seed: int = 0, speed: int = 110) -> np.ndarray:
    """A sung-style rendering: each word spoken by espeak-ng on its own note (pitch varied per word),
    slowed and with vowels held. Not real singing; a stand-in whose words are known exactly."""
    rng = np.random.default_rng(seed)
    melody = [30, 45, 60, 75, 60, 45, 70, 85]
    parts = []
    for k, word in enumerate(text.split()):
        pitch = int(melody[(k + int(rng.integers(0, 3))) % len(melody)])
        parts.append(speak(word, speed=speed, pitch=pitch))
        parts.append(np.zeros(int(RATE * rng.uniform(0.02, 0.08)), np.float32))
    return np.concatenate(parts)


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return samples.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, RATE)
    return resample_poly(samples, RATE // g, rate // g).astype(np.float32)


def music(seconds: float, *, seed: int = 0) -> np.ndarray:
    """A chord progression with a beat (no voice), 16 kHz mono float32 at about -15 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    roots = [220.0, 174.6, 196.0, 261.6]
    out = np.zeros_like(t)
    bar = 2.0
    for k in range(int(np.ceil(seconds / bar))):
        sl = slice(int(k * bar * RATE), int((k + 1) * bar * RATE))
        root = roots[(k + int(rng.integers(0, 4))) % 4]
        for ratio in (1.0, 1.26, 1.5, 2.0):
            out[sl] += np.sin(2 * np.pi * root * ratio * t[sl]) / 4
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(np.float64) * rng.standard_normal(len(t)) * 0.5
    out = 0.6 * out + beat
    return (0.18 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def noise(seconds: float, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def mix(voice: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """Voice over background at the given signal-to-noise ratio (background looped or cut to fit)."""
    reps = int(np.ceil(len(voice) / max(1, len(background))))
    bg = np.tile(background, reps)[: len(voice)].astype(np.float64)
    pv = float(np.mean(voice.astype(np.float64) ** 2)) or 1e-12
    pb = float(np.mean(bg**2)) or 1e-12
    bg *= np.sqrt(pv / (pb * 10 ** (snr_db / 10)))
    out = voice.astype(np.float64) + bg
    peak = np.abs(out).max()
    return (out / peak * 0.9 if peak > 0.99 else out).astype(np.float32)


def write_wav(path: Path | str, samples: np.ndarray, rate: int = RATE) -> Path:
    data = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return Path(path)


def font(size: int, index: int = 0) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in [*_FONTS[index:], *_FONTS[:index]]:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def slide(
    title: str, lines: Sequence[str], size: tuple[int, int] = (960, 540), *, seed: int = 0
) -> np.ndarray:
    """A presentation slide: a title and bullet lines on a plain or gradient background."""
    rng = np.random.default_rng(seed)
    w, h = size
    top = np.array(rng.integers(200, 256, 3), dtype=np.float32)
    bottom = top - rng.integers(0, 40, 3)
    grad = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    bg = (top * (1 - grad) + bottom * grad) * np.ones((1, w, 1), np.float32)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    face = int(rng.integers(0, len(_FONTS)))
    draw.text((int(w * 0.06), int(h * 0.08)), title, fill=ink, font=font(int(h * 0.085), face))
    body = font(int(h * 0.06), face)
    for k, line in enumerate(lines):
        draw.text((int(w * 0.08), int(h * (0.3 + 0.13 * k))), line, fill=ink, font=body)
    return np.asarray(img)


def sign_photo(text: str, size: tuple[int, int] = (800, 600), *, seed: int = 0) -> np.ndarray:
    """A 'photo' of a sign: text on a board over a textured scene, slightly rotated, blurred and noisy."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    scene = np.stack(
        [
            110 + 50 * np.sin(x / rng.uniform(9, 25) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(11, 30)),
            120 + 40 * np.sin(y / rng.uniform(7, 20)),
            90 + 60 * np.cos((x + y) / rng.uniform(15, 40)),
        ],
        -1,
    )
    scene += rng.normal(0, 18, scene.shape)
    img = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
    face = font(int(rng.integers(38, 60)), int(rng.integers(0, len(_FONTS))))
    probe = ImageDraw.Draw(img).textbbox((0, 0), text, font=face)
    tw, th = probe[2] - probe[0], probe[3] - probe[1]
    board = Image.new(
        "RGBA", (int(tw) + 40, int(th) + 40), (*(int(v) for v in rng.integers(180, 256, 3)), 255)
    )
    ImageDraw.Draw(board).text(
        (20, 20 - probe[1]), text, fill=tuple(int(v) for v in rng.integers(0, 60, 3)), font=face
    )
    board = board.rotate(float(rng.uniform(-8, 8)), expand=True, resample=Image.Resampling.BICUBIC)
    bx = int(rng.integers(10, max(11, w - board.size[0] - 10)))
    by = int(rng.integers(10, max(11, h - board.size[1] - 10)))
    img.paste(board, (bx, by), board)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def textfree_picture(size: tuple[int, int] = (800, 600), *, seed: int = 0) -> np.ndarray:
    """A picture without text: smooth gradients, blobs and texture (landscape-like)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(w, h)
    img = np.stack(
        [rng.uniform(40, 200) + 60 * np.sin(x * rng.uniform(2, 9) + y * rng.uniform(1, 6)) for _ in range(3)],
        -1,
    )
    for _ in range(int(rng.integers(2, 6))):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.05, 0.2)
        img += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r**2)[..., None] * rng.uniform(-80, 80, 3)
    img += rng.normal(0, rng.uniform(2, 14), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def scan_pdf_bytes(pages: Sequence[np.ndarray], *, seed: int = 0, quality: int = 85) -> bytes:
    """A PDF whose pages are only JPEG images (no text layer), as a scanner writes them."""
    rng = np.random.default_rng(seed)
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 3 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for i, rgb in enumerate(pages):
        noisy = np.clip(rgb.astype(np.float32) + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).convert("L").save(buf, "JPEG", quality=quality)
        jpeg = buf.getvalue()
        h, w = rgb.shape[:2]
        image_id, content_id = 4 + 3 * i, 5 + 3 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 {image_id} 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        objects.append(
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
            f"/BitsPerComponent 8 /Filter /DCTDecode /Length {len(jpeg)} >>\nstream\n".encode()
            + jpeg
            + b"\nendstream"
        )
        ops = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
        objects.append(b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"\nendstream")
    return pdf_from_objects(objects)


def page_picture(lines: Sequence[str], size: tuple[int, int] = (1275, 1650), *, seed: int = 0) -> np.ndarray:
    """A printed page (black text on off-white paper) at 150 dpi, for scans."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(235, 256, 3)))
    draw = ImageDraw.Draw(img)
    face = font(34, int(rng.integers(0, len(_FONTS))))
    for k, line in enumerate(lines):
        draw.text((110, 150 + 60 * k), line, fill=(20, 20, 20), font=face)
    return np.asarray(img)


def write_video(
    path: Path | str,
    pictures: Sequence[tuple[np.ndarray, float]],
    audio: np.ndarray | None,
    fps: int = 12,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """An H.264/AAC MP4 showing each picture for its seconds, with `audio` (16 kHz mono) as soundtrack."""
    import av

    w, h = size
    container = av.open(str(path), mode="w")
    vstream = container.add_stream("libx264", rate=fps)
    vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
    vstream.options = {"crf": "20", "preset": "veryfast", "g": str(fps * 2), "threads": "1"}
    astream = None
    if audio is not None:
        astream = container.add_stream("aac", rate=RATE)
        astream.layout = "mono"
    index = 0
    for rgb, seconds in pictures:
        frame_rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS))
        for _ in range(max(1, round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
            frame.pts = index
            index += 1
            for packet in vstream.encode(frame):
                container.mux(packet)
    for packet in vstream.encode():
        container.mux(packet)
    if astream is not None and audio is not None:
        mux_mono_s16(container, astream, (np.clip(audio, -1, 1) * 32767).astype(np.int16), RATE)
    container.close()
    return Path(path)


def mux_mono_s16(container: Any, stream: Any, samples: np.ndarray, rate: int) -> None:
    """Encode mono int16 samples into an audio stream of an open PyAV container, and flush it."""
    import av

    pts = 0
    for start in range(0, len(samples), 1024):
        chunk = samples[start : start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        pts += len(chunk)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def pdf_from_objects(objects: Sequence[bytes]) -> bytes:
    """A PDF file from its numbered object bodies (object 1 is the catalog), with its xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
