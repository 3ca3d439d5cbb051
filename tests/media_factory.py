"""Small, real media files for tests across DataFlux: generated with numpy, PyAV, Pillow and by hand.

Every function writes one file at `path` (a pathlib.Path or str) and returns its Path. Content is
deterministic (seeded), textured and small, so decoders, shot detection and features see real data.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

# Distinct base colours for scenes and frames (RGB).
PALETTE = [
    (200, 40, 40),
    (40, 160, 60),
    (40, 70, 200),
    (220, 200, 40),
    (160, 40, 180),
    (40, 190, 190),
    (230, 120, 30),
    (90, 90, 90),
]


def scene_cut_frames(seconds: float, fps: int, scenes: int | Sequence[float] = 1) -> list[int]:
    """First frame index of every scene after the first, as `make_video` lays them out."""
    total = round(seconds * fps)
    lengths = [seconds / scenes] * scenes if isinstance(scenes, int) else list(scenes)
    cuts, t = [], 0.0
    for length in lengths[:-1]:
        t += length
        cuts.append(round(t * fps))
    return [c for c in cuts if 0 < c < total]


def _texture(rng: np.random.Generator, size: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    w, h = size
    # Low-frequency noise upsampled: texture that survives H.264 and gives sharpness/contrast something to measure.
    small = rng.integers(0, 90, (h // 8 + 2, w // 8 + 2, 1)).astype(np.float32)
    noise = np.kron(small, np.ones((8, 8, 1), np.float32))
    base = np.array(colour, np.float32)[None, None, :] * 0.7 + noise
    return np.clip(base, 0, 255).astype(np.uint8)


def video_frames(
    seconds: float = 2, fps: int = 25, size: tuple[int, int] = (160, 120), scenes: int | Sequence[float] = 1
) -> list[np.ndarray]:
    """The RGB frames `make_video` encodes: a textured background per scene with a moving square."""
    w, h = size
    total = round(seconds * fps)
    cuts = scene_cut_frames(seconds, fps, scenes)
    rng = np.random.default_rng(7)
    starts = [0, *cuts]
    backgrounds = [_texture(rng, (w + 64, h), PALETTE[i % len(PALETTE)]) for i in range(len(starts))]
    frames = []
    for i in range(total):
        scene = sum(1 for c in cuts if i >= c)
        local = i - starts[scene]
        shift = (local * 2) % 64  # slow pan inside a scene
        frame = backgrounds[scene][:, shift : shift + w].copy()
        side = max(8, h // 5)
        x = (local * 3) % max(1, w - side)
        y = (h - side) // 2
        frame[y : y + side, x : x + side] = (255, 255, 255) if scene % 2 == 0 else (15, 15, 15)
        frames.append(frame)
    return frames


def make_video(
    path: Path | str,
    seconds: float = 2,
    fps: int = 25,
    size: tuple[int, int] = (160, 120),
    with_audio: bool = True,
    scenes: int | Sequence[float] = 1,
    container_options: dict[str, str] | None = None,
) -> Path:
    """H.264 video (yuv420p) with textured moving content, one colour per scene, and AAC mono audio
    whose tone changes per scene (440 Hz, 660 Hz, ...). Scene cuts: `scene_cut_frames(...)`."""
    path = Path(path)
    frames = video_frames(seconds, fps, size, scenes)
    cuts = scene_cut_frames(seconds, fps, scenes)
    out = av.open(str(path), "w", options=container_options or {})
    try:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.options = {"crf": "20", "preset": "ultrafast", "g": str(fps * 2)}
        aus = out.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        sr, n = 16000, 0
        total_samples = round(seconds * sr)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
            # Interleave audio up to this frame's end, as a real muxer input would be.
            while aus is not None and n < min(total_samples, round((i + 1) / fps * sr)):
                t = np.arange(n, n + 1024) / sr
                scene = sum(1 for c in cuts if t[0] * fps >= c)
                tone = (0.3 * np.sin(2 * np.pi * (440 + 220 * scene) * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts = sr, n
                n += 1024
                for packet in aus.encode(af):
                    out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            for packet in aus.encode():
                out.mux(packet)
    finally:
        out.close()
    return path


def make_audio_file(path: Path | str, codec: str, fmt: str, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A short tone in another container/codec via PyAV: ("aac", "ipod") → .m4a, ("libmp3lame", "mp3"),
    ("flac", "flac"), ("libopus", "ogg")."""
    path = Path(path)
    out = av.open(str(path), "w", format=fmt)
    try:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        sample_format = stream.codec_context.format.name
        n, total = 0, round(seconds * rate)
        while n < total:
            t = np.arange(n, n + frame_size) / rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            if sample_format.startswith("s16"):
                data = (tone * 32767).astype(np.int16)[None, :]
            elif sample_format.startswith("s32"):
                data = (tone * 2147483647).astype(np.int32)[None, :]
            else:
                data = tone[None, :]
            af = av.AudioFrame.from_ndarray(data, format=sample_format, layout="mono")
            af.sample_rate, af.pts = rate, n
            n += frame_size
            for packet in stream.encode(af):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    return path


def image_array(size: tuple[int, int] = (320, 240), seed: int = 1) -> np.ndarray:
    """A textured RGB test picture: gradient sky, coloured blocks, a sharp edge and noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 60 + 150 * x / max(1, w - 1)
    img[..., 1] = 80 + 120 * y / max(1, h - 1)
    img[..., 2] = 200 - 100 * x / max(1, w - 1)
    img[h // 2 :, : w // 3] = (220, 40, 40)
    img[h // 2 :, w // 3 : 2 * w // 3] = (30, 30, 30)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image(
    path: Path | str, fmt: str = "PNG", size: tuple[int, int] = (320, 240), exif: bool = True
) -> Path:
    """A still image in a Pillow format (JPEG, PNG, WEBP, GIF, TIFF, BMP); JPEG/WEBP/TIFF carry EXIF."""
    path = Path(path)
    img = Image.fromarray(image_array(size))
    kwargs: dict = {}
    if exif and fmt.upper() in {"JPEG", "WEBP", "TIFF", "PNG"}:
        info = Image.Exif()
        info[0x010F] = "DataFlux Test Camera"  # Make
        info[0x0110] = "Factory 1"  # Model
        info[0x0132] = "2024:05:17 10:30:00"  # DateTime
        kwargs["exif"] = info.tobytes()
    if fmt.upper() == "GIF":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE)
    img.save(path, format=fmt.upper(), **kwargs)
    return path


def make_gif(path: Path | str, frames: int, size: tuple[int, int] = (48, 32), duration_ms: int = 100) -> Path:
    """An animated GIF; every frame differs (Pillow would merge identical ones): a small white square
    moves over a background whose colour switches every 8 frames, so the animation has "scenes"."""
    path = Path(path)
    w, h = size
    images = []
    for i in range(frames):
        colour = PALETTE[(i // 8) % len(PALETTE)]
        arr = np.empty((h, w, 3), np.uint8)
        arr[:] = colour
        x = (i % 8) * (w // 8)
        arr[2:6, x : x + 4] = 255
        images.append(Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=16))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def make_many_frame_gif(path: Path | str, frames: int) -> Path:
    """A 1×1-pixel GIF with `frames` frames, written byte by byte (10,000 frames in milliseconds)."""
    path = Path(path)
    parts = [b"GIF89a", struct.pack("<HHBBB", 1, 1, 0xF1, 0, 0)]  # global table of 4 colours
    parts.append(bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]))
    parts.append(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    for i in range(frames):
        parts.append(b"\x21\xf9\x04\x00\x01\x00\x00\x00")  # graphic control: 10 ms
        parts.append(b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0))
        index = i % 4
        # LZW, minimum code size 2, 3-bit codes LSB first: clear(4), index, end(5).
        bits = 4 | (index << 3) | (5 << 6)
        parts.append(b"\x02\x02" + struct.pack("<H", bits) + b"\x00")
    parts.append(b"\x3b")
    path.write_bytes(b"".join(parts))
    return path


def make_animated_webp(path: Path | str, frames: int, size: tuple[int, int] = (48, 32)) -> Path:
    """An animated WebP: a moving white square, background colour switching every 4 frames."""
    path = Path(path)
    w, h = size
    images = []
    for i in range(frames):
        arr = np.empty((h, w, 3), np.uint8)
        arr[:] = PALETTE[(i // 4) % len(PALETTE)]
        x = (i % 4) * (w // 4)
        arr[2:6, x : x + 4] = 255
        images.append(Image.fromarray(arr))
    images[0].save(path, format="WEBP", save_all=True, append_images=images[1:], duration=80, lossless=True)
    return path


def _tone(t: np.ndarray, freqs: Sequence[float]) -> np.ndarray:
    return sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)


def _speech_like(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Syllables: voiced harmonic bursts (varying pitch) and unvoiced noise bursts, 80–250 ms each,
    with short pauses: the ~4 Hz energy modulation and voiced/unvoiced alternation of speech."""
    out = np.zeros(n, np.float32)
    pos = int(rng.integers(0, sr // 20))
    while pos < n:
        length = int(rng.uniform(0.08, 0.25) * sr)
        seg = np.arange(min(length, n - pos)) / sr
        if rng.random() < 0.7:
            f0 = rng.uniform(110, 220)
            sound = sum(np.sin(2 * np.pi * f0 * k * seg) / k for k in range(1, 8))
        else:
            sound = rng.normal(0, 0.6, seg.size)
        envelope = np.sin(np.pi * np.linspace(0, 1, seg.size))
        out[pos : pos + seg.size] = 0.35 * sound * envelope
        pos += seg.size + int(rng.uniform(0.04, 0.15) * sr)
    return out


def audio_samples(
    pattern: Sequence[tuple[str, float]], sample_rate: int = 16000, seed: int = 3
) -> np.ndarray:
    """Mono float32 samples for a pattern of (kind, seconds): kinds "tone" (440 Hz), "chord" (a steady
    A-major chord), "bursts" (0.5 s tone bursts with 0.5 s gaps), "noise" (white), "speech"
    (speech-like syllables), "silence"."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in pattern:
        n = round(seconds * sample_rate)
        t = np.arange(n) / sample_rate
        if kind == "tone":
            parts.append(0.4 * _tone(t, [440.0]))
        elif kind == "chord":
            parts.append(0.4 * _tone(t, [440.0, 554.37, 659.25, 880.0]))
        elif kind == "bursts":
            gate = (np.floor(t * 2) % 2 == 0).astype(np.float32)
            parts.append(0.4 * _tone(t, [660.0]) * gate)
        elif kind == "noise":
            parts.append(rng.normal(0, 0.15, n))
        elif kind == "speech":
            parts.append(_speech_like(rng, n, sample_rate))
        elif kind == "silence":
            parts.append(np.zeros(n))
        else:
            raise ValueError(f"unknown audio pattern kind {kind!r}")
    return np.concatenate(parts).astype(np.float32)


DEFAULT_WAV_PATTERN = (("chord", 3.0), ("silence", 2.0), ("speech", 4.0), ("noise", 2.0), ("bursts", 2.0))


def make_wav(
    path: Path | str, pattern: Sequence[tuple[str, float]] = DEFAULT_WAV_PATTERN, sample_rate: int = 16000
) -> Path:
    """A 16-bit mono WAV made of `audio_samples(pattern)`."""
    path = Path(path)
    pcm = (np.clip(audio_samples(pattern, sample_rate), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _wrap(text: str, width: int = 80) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def pdf_bytes(pages_text: Sequence[str], extra_trailer: str = "") -> bytes:
    """A minimal, valid PDF with one Helvetica text page per string (pypdf extracts the text)."""
    n = len(pages_text)
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    for i, text in enumerate(pages_text):
        page_obj, content_obj = 4 + 2 * i, 5 + 2 * i
        objects[page_obj] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_obj} 0 R >>"
        ).encode()
        ops = ["BT", "/F1 11 Tf", "14 TL", "60 740 Td"]
        for line in _wrap(text):
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252", errors="replace")
        objects[content_obj] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n")
    xref = out.tell()
    size = max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for num in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[num])
    out.write(f"trailer\n<< /Size {size} /Root 1 0 R {extra_trailer}>>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_pdf(path: Path | str, pages_text: Sequence[str]) -> Path:
    """A text PDF, one page per string."""
    path = Path(path)
    path.write_bytes(pdf_bytes(pages_text))
    return path


def make_encrypted_pdf(
    path: Path | str, pages_text: Sequence[str] = ("Secret page.",), password: str = "s3cret"
) -> Path:
    """A PDF that needs a user password to open (AES-128)."""
    from pypdf import PdfReader, PdfWriter

    path = Path(path)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages_text))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    with path.open("wb") as f:
        writer.write(f)
    return path


def make_looping_pdf(path: Path | str) -> Path:
    """A PDF whose page tree contains itself (/Pages 2 0 R lists 2 0 R among its kids) and whose
    xref section points back at itself through /Prev: a parser that follows either loops forever."""
    path = Path(path)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
        3: b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
    }
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 4\n0000000000 65535 f \n")
    for num in (1, 2, 3):
        out.write(b"%010d 00000 n \n" % offsets[num])
    out.write(f"trailer\n<< /Size 4 /Root 1 0 R /Prev {xref} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    path.write_bytes(out.getvalue())
    return path


LOREM = (
    "DataFlux turns every file into searchable segments with features and embeddings. "
    "Operators watch runs in the Dagster user interface and backfill partitions when models change. "
    "Video shots, audio passages, images and document chunks share one catalog. "
    "Each segment keeps its offsets so a search result can point at the exact passage. "
    "Hostile files fail their own partition with a reason code while the rest carry on. "
)


def prose(words: int, seed: int = 0) -> str:
    """Deterministic English-like prose of about `words` words, split into sentences."""
    sentences = [s.strip() + "." for s in LOREM.split(".") if s.strip()]
    out, count, i = [], 0, seed
    while count < words:
        sentence = sentences[i % len(sentences)]
        out.append(sentence)
        count += len(sentence.split())
        i += 1
    return " ".join(out)


def markdown_text(sections: int = 3, words_per_section: int = 180) -> str:
    """A markdown document with headings, paragraphs, a list and links."""
    parts = ["# DataFlux field notes", ""]
    for i in range(sections):
        parts += [f"## Section {i + 1}", "", prose(words_per_section // 2, seed=i), ""]
        parts += ["- first point with a [link](https://example.org/a)", "- second point", ""]
        parts += [prose(words_per_section // 2, seed=i + 1), ""]
    return "\n".join(parts)


def make_markdown(path: Path | str, sections: int = 3, words_per_section: int = 180) -> Path:
    path = Path(path)
    path.write_text(markdown_text(sections, words_per_section), encoding="utf-8")
    return path


def make_text(path: Path | str, words: int = 400) -> Path:
    """Plain UTF-8 prose in paragraphs, no markup."""
    path = Path(path)
    paragraphs = [prose(words // 4, seed=i) for i in range(4)]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def make_html(path: Path | str, words: int = 300) -> Path:
    """An HTML page with a title, visible paragraphs and script/style that must not count as text."""
    path = Path(path)
    body = "".join(f"<p>{prose(words // 3, seed=i)}</p>\n" for i in range(3))
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>Field notes</title>"
        "<style>body { color: red; }</style><script>var hidden = 'do not index';</script></head>"
        f"<body><h1>Field notes</h1>\n{body}</body></html>\n",
        encoding="utf-8",
    )
    return path


def make_truncated_mp4(path: Path | str, fraction: float = 0.6, faststart: bool = False) -> Path:
    """The first `fraction` of a valid MP4 (moov at the end by default, so it is missing)."""
    path = Path(path)
    full = path.with_name(path.stem + ".full.mp4")
    make_video(full, seconds=2, container_options={"movflags": "faststart"} if faststart else None)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def make_elf_named_mp4(path: Path | str) -> Path:
    """An ELF executable header under a video's name."""
    path = Path(path)
    header = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1)
    path.write_bytes(header + b"\x00" * 4096)
    return path


def make_bomb_png(path: Path | str, side: int = 14000) -> Path:
    """A 1-bit greyscale PNG whose header claims side×side pixels (> 2× Pillow's limit by default),
    all zero, so it is a few tens of kilobytes on disk."""
    path = Path(path)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = 512
    block = row * rows_per_block
    body = []
    for start in range(0, side, rows_per_block):
        body.append(compressor.compress(block if start + rows_per_block <= side else row * (side - start)))
    body.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b"")
    )
    return path


def ogg_page(packet: bytes, serial: int = 1, bos: bool = True) -> bytes:
    """One Ogg page carrying one packet (CRC left zero: enough for sniffing, not for decoding)."""
    segments = []
    remaining = len(packet)
    while remaining >= 255:
        segments.append(255)
        remaining -= 255
    segments.append(remaining)
    header = b"OggS" + bytes([0, 2 if bos else 0]) + struct.pack("<qIII", 0, serial, 0, 0)
    return header + bytes([len(segments)]) + bytes(segments) + packet
