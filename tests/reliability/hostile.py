"""A hostile corpus: files that lie, explode, end early or never end, and the names they arrive under.

Every input says what DataFlux must do with it: `refused` at the door (a reason code, nothing stored),
`failed` in its own partition with one of the listed reason codes, or `completed` (a file that looks
odd but decodes, stored as decoded). `terminal` allows either `completed` or a failure with one of
the listed reasons, for inputs whose outcome depends on the decoder build (both are acceptable; being
stuck, a 5xx or an unknown reason is not). The bytes are built here, deterministically, from the
seed, with no file from outside.
"""

from __future__ import annotations

import io
import json
import struct
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import media_factory as mf
import numpy as np
from PIL import Image

from dataflux_pipelines.errors import Reason
from dataflux_pipelines.text_samples import pdf_from_objects

# Reasons a file the decoders reject may carry; the exact one depends on where the decoder stops.
UNREADABLE = frozenset(
    {
        Reason.CORRUPT_MEDIA,
        Reason.TRUNCATED_MEDIA,
        Reason.UNSUPPORTED_MEDIA_TYPE,
        Reason.TYPE_MISMATCH,
        Reason.DECODER_CRASHED,
    }
)
BOUNDED = frozenset({Reason.DECOMPRESSION_BOMB, Reason.DECODE_MEMORY_LIMIT, Reason.DECODE_TIMEOUT})


@dataclass(frozen=True)
class HostileInput:
    cls: str  # the class of attack (the table counts classes)
    name: str  # the upload name (itself hostile for the `hostile_name` class)
    data: bytes
    expect: str  # refused | failed | completed | terminal
    reasons: frozenset[Reason] = field(default_factory=frozenset)

    def allows(self, status: str, reason: str | None) -> bool:
        """Whether the catalog's final (status, reason_code) is what this input must end as."""
        if self.expect == "completed":
            return status == "completed"
        if status == "completed":
            return self.expect == "terminal"
        return status == "failed" and reason in {r.value for r in self.reasons}


def _png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(mf.image_array(size, seed)).save(out, format="JPEG", quality=80)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height RGB pixels, followed by one row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is rewritten to claim width×height."""
    data = bytearray(_jpeg(7))
    pos = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, pos + 5, height, width)
    return bytes(data)


def _zip_bomb() -> bytes:
    """A ZIP holding 200 MB of zeros in a few hundred kilobytes (named like an office document)."""
    import zipfile

    out = io.BytesIO()
    block = b"\x00" * (1 << 20)
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("word/document.xml", "w") as member,
    ):
        for _ in range(200):
            member.write(block)
    return out.getvalue()


def _wav(rate: int = 16000, channels: int = 1, seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x01" * int(rate * seconds) * channels)
    return out.getvalue()


def _wav_header(
    *, riff_size: int, data_size: int, rate: int = 16000, channels: int = 1, bits: int = 16
) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


def _video(tmp: Path, name: str, **kwargs: object) -> bytes:
    path = mf.make_video(tmp / name, **kwargs)  # type: ignore[arg-type]
    data = path.read_bytes()
    path.unlink()
    return data


def _pdf_out_of_range_xref() -> bytes:
    data = mf.pdf_bytes(["A page whose cross-reference table points past the end of the file."])
    head, _, _ = data.rpartition(b"startxref\n")
    return head + b"startxref\n999999999\n%%EOF\n"


def _pdf_many_pages(pages: int) -> bytes:
    """A PDF whose page tree claims `pages` pages that all share one empty content stream."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Length 0 >>\nstream\n\nendstream",
    }
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()
    for i in range(pages):
        objects[4 + i] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"
    return pdf_from_objects([objects[n] for n in sorted(objects)])


def _pdf_stream_bomb() -> bytes:
    """A one-page PDF whose content stream inflates (FlateDecode) to 100 MB of spaces."""
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(b" " * (1 << 20)) for _ in range(100)) + compressor.flush()
    page = mf.pdf_bytes(["x"])
    marker = b"<< /Length "
    start = page.index(marker, page.index(b"5 0 obj"))
    end = page.index(b"endstream", start) + len(b"endstream")
    bomb = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream"
    # Offsets in the xref are now wrong: readers must rebuild it (pypdf does, strict readers refuse).
    return page[:start] + bomb + page[end:]


def _image_bytes(pixels: np.ndarray | Image.Image, fmt: str) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _audio_only_mp4(tmp: Path) -> bytes:
    """AAC audio in an MP4 container under a video's name (the streams are good, the name is not)."""
    path = mf.make_audio_file(tmp / "talk.m4a", "aac", "ipod", seconds=2)
    data = path.read_bytes()
    path.unlink()
    return data


def _deep_json(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _deep_markdown(levels: int) -> bytes:
    quote = "\n".join(">" * min(i + 1, levels) + " nested quote line" for i in range(levels))
    lists = "\n".join("  " * i + "- item" for i in range(min(levels, 2000)))
    return f"# Deep\n\n{quote}\n\n{lists}\n".encode()


def hostile_corpus(tmp: Path, seed: int = 16) -> list[HostileInput]:
    """At least 40 hostile inputs in at least 15 classes (see the module docstring for `expect`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    video = _video(tmp, "base.mp4", seconds=2, scenes=2)
    faststart = _video(tmp, "fast.mp4", seconds=2, container_options={"movflags": "faststart"})
    wav = _wav()
    pdf = mf.pdf_bytes(["A plain page about harbours and tides.", "A second page."])
    F = "failed"
    out = [
        # empty: refused at the door, whatever the name claims
        *(HostileInput("empty", f"empty{ext}", b"", "refused") for ext in (".png", ".mp4", ".pdf", ".txt")),
        # truncated: the first part of a valid file
        HostileInput("truncated", "half.png", _png(1)[: len(_png(1)) // 2], F, UNREADABLE),
        HostileInput("truncated", "half.jpg", _jpeg(2)[:300], "terminal", UNREADABLE),
        HostileInput("truncated", "moov-missing.mp4", video[: int(len(video) * 0.6)], F, UNREADABLE),
        HostileInput(
            "truncated", "faststart-cut.mp4", faststart[: len(faststart) // 3], "terminal", UNREADABLE
        ),
        HostileInput("truncated", "cut.pdf", pdf[: len(pdf) // 2], "terminal", UNREADABLE | {Reason.NO_TEXT}),
        # lying extensions: the name claims one media type, the bytes are another
        HostileInput(
            "lying_extension", "song.wav", json.dumps({"not": "audio"}).encode(), F, {Reason.TYPE_MISMATCH}
        ),
        HostileInput("lying_extension", "holiday.mp4", _png(3), F, {Reason.TYPE_MISMATCH}),
        HostileInput(
            "lying_extension", "scan.jpg", b"plain words, not a picture\n" * 20, F, {Reason.TYPE_MISMATCH}
        ),
        HostileInput("lying_extension", "report.pdf", wav, F, {Reason.TYPE_MISMATCH}),
        # lying headers: the magic number of a format, then noise
        HostileInput("lying_header", "noise.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(4000), F, UNREADABLE),
        HostileInput("lying_header", "noise.jpg", b"\xff\xd8\xff\xe0" + rng.bytes(4000), F, UNREADABLE),
        HostileInput(
            "lying_header", "noise.pdf", b"%PDF-1.7\n" + rng.bytes(4000), F, UNREADABLE | {Reason.NO_TEXT}
        ),
        HostileInput(
            "lying_header", "noise.mp4", b"\x00\x00\x00\x18ftypmp42" + rng.bytes(4000), F, UNREADABLE
        ),
        # polyglots: valid as one format, carrying another
        HostileInput("polyglot", "png-zip.png", _png(4) + _zip_bomb()[:2000], "completed"),
        HostileInput("polyglot", "jpeg-pdf.jpg", _jpeg(5) + pdf, "completed"),
        HostileInput(
            "polyglot",
            "pdf-html.pdf",
            pdf + b"<html><script>alert(1)</script></html>",
            "terminal",
            {Reason.NO_TEXT},
        ),
        HostileInput("polyglot", "gif-js.gif", b"GIF89a/*" + rng.bytes(200) + b"*/=alert(1);", F, UNREADABLE),
        # decompression bombs: tiny files that claim or inflate to enormous sizes
        HostileInput(
            "decompression_bomb", "claims-100k.png", _png_claiming(100_000, 100_000), F, BOUNDED | UNREADABLE
        ),
        HostileInput(
            "decompression_bomb", "inflates.png", mf.make_bomb_png(tmp / "bomb.png").read_bytes(), F, BOUNDED
        ),
        HostileInput(
            "decompression_bomb", "claims-65k.jpg", _jpeg_claiming(65_000, 65_000), F, BOUNDED | UNREADABLE
        ),
        HostileInput("decompression_bomb", "zip-bomb.docx", _zip_bomb(), F, {Reason.UNSUPPORTED_MEDIA_TYPE}),
        HostileInput(
            "decompression_bomb",
            "stream-bomb.pdf",
            _pdf_stream_bomb(),
            "terminal",
            BOUNDED | UNREADABLE | {Reason.NO_TEXT},
        ),
        # huge frame counts
        HostileInput(
            "huge_frame_count",
            "10k-frames.gif",
            mf.make_many_frame_gif(tmp / "many.gif", 10_000).read_bytes(),
            "terminal",
            BOUNDED | {Reason.TOO_MANY_FRAMES},
        ),
        HostileInput(
            "huge_frame_count",
            "fast.mp4",
            _video(tmp, "fps.mp4", seconds=4, fps=240, size=(32, 32)),
            "terminal",
            BOUNDED | {Reason.TOO_MANY_FRAMES},
        ),
        # hostile PDFs
        HostileInput(
            "hostile_pdf",
            "encrypted.pdf",
            mf.make_encrypted_pdf(tmp / "enc.pdf").read_bytes(),
            F,
            {Reason.ENCRYPTED_DOCUMENT},
        ),
        HostileInput(
            "hostile_pdf",
            "loop.pdf",
            mf.make_looping_pdf(tmp / "loop.pdf").read_bytes(),
            F,
            UNREADABLE | BOUNDED | {Reason.NO_TEXT},
        ),
        HostileInput(
            "hostile_pdf", "bad-xref.pdf", _pdf_out_of_range_xref(), "terminal", UNREADABLE | {Reason.NO_TEXT}
        ),
        HostileInput(
            "hostile_pdf", "5000-pages.pdf", _pdf_many_pages(5000), "terminal", BOUNDED | {Reason.NO_TEXT}
        ),
        # lying WAV headers
        HostileInput(
            "lying_wav",
            "claims-2gb.wav",
            _wav_header(riff_size=2_000_000_000, data_size=2_000_000_000) + b"\0\0" * 992,
            F,
            {Reason.TRUNCATED_MEDIA},
        ),
        HostileInput(
            "lying_wav",
            "zero-rate.wav",
            _wav_header(riff_size=36 + 3200, data_size=3200, rate=0) + b"\0" * 3200,
            F,
            UNREADABLE,
        ),
        HostileInput(
            "lying_wav",
            "zero-channels.wav",
            _wav_header(riff_size=36 + 3200, data_size=3200, channels=0) + b"\0" * 3200,
            F,
            UNREADABLE,
        ),
        HostileInput("lying_wav", "odd-size.wav", wav[:-1], "terminal", UNREADABLE),
        # text extremes
        HostileInput("text_extreme", "one-line.md", b"# Title\n\n" + b"word " * 400_000, "completed"),
        HostileInput("text_extreme", "nuls.txt", b"text\x00with\x00NUL\x00bytes\n" * 200, F, UNREADABLE),
        HostileInput(
            "text_extreme", "deep.json", _deep_json(100_000), "terminal", UNREADABLE | {Reason.NO_TEXT}
        ),
        HostileInput("text_extreme", "deep.md", _deep_markdown(5000), "completed"),
        HostileInput("text_extreme", "no-spaces.txt", b"x" * 300_000, "terminal", {Reason.NO_TEXT}),
        # bad encodings
        HostileInput(
            "bad_encoding",
            "latin1.txt",
            "Café naïve façade, déjà vu. ".encode("latin-1") * 50,
            "terminal",
            UNREADABLE,
        ),
        HostileInput(
            "bad_encoding",
            "utf16-no-bom.txt",
            "Hello harbour tides. ".encode("utf-16-le") * 50,
            "terminal",
            UNREADABLE,
        ),
        HostileInput(
            "bad_encoding", "overlong.txt", b"overlong \xc0\xaf slash " * 100, "terminal", UNREADABLE
        ),
        HostileInput(
            "bad_encoding",
            "surrogates.md",
            b"# Notes\n\n- a\n- b\n" + b"\xed\xa0\x80 lone surrogate\n" * 50,
            "terminal",
            UNREADABLE,
        ),
        # unsupported files
        HostileInput(
            "unsupported",
            "program.png",
            mf.make_elf_named_mp4(tmp / "elf").read_bytes(),
            F,
            {Reason.UNSUPPORTED_MEDIA_TYPE},
        ),
        HostileInput("unsupported", "random.bin", rng.bytes(5000), F, {Reason.UNSUPPORTED_MEDIA_TYPE}),
        HostileInput(
            "unsupported",
            "db.jpg",
            b"SQLite format 3\x00" + rng.bytes(2000),
            F,
            {Reason.UNSUPPORTED_MEDIA_TYPE},
        ),
        # odd but valid: extreme sizes and pixel formats that decoders must still handle
        HostileInput("edge_valid", "one-pixel.png", _png(9, (1, 1)), "completed"),
        HostileInput(
            "edge_valid",
            "sixteen-bit.png",
            _image_bytes(np.full((40, 30), 40000, np.uint16), "PNG"),
            "completed",
        ),
        HostileInput(
            "edge_valid",
            "cmyk.jpg",
            _image_bytes(Image.new("CMYK", (40, 30), (10, 200, 30, 0)), "JPEG"),
            "completed",
        ),
        HostileInput("edge_valid", "1x4000.png", _png(10, (1, 4000)), "completed"),
        # headers that disagree with good streams: stored as decoded, the mismatch a visible warning
        HostileInput("header_stream_mismatch", "talk.mp4", _audio_only_mp4(tmp), "completed"),
        HostileInput(
            "header_stream_mismatch",
            "silent.mp4",
            _video(tmp, "mute.mp4", seconds=2, with_audio=False),
            "completed",
        ),
        # a name longer than the multipart parser's header limit: refused with its own code
        HostileInput("hostile_name", "b" * 9000 + ".png", _png(99), "refused"),
        # valid files under hostile upload names: the name is metadata, never a path
        *(
            HostileInput("hostile_name", name, _png(100 + i), "completed")
            for i, name in enumerate(HOSTILE_NAMES)
        ),
    ]
    return out


HOSTILE_NAMES = [
    "../../../../etc/passwd.png",
    "..\\..\\windows\\system32\\x.png",
    "/absolute/path.png",
    "nul\x00byte.png",
    "a" * 1000 + ".png",  # cut to 200 characters when stored
    "invoice\u202egnp.exe",  # right-to-left override: displays as invoiceexe.png
    "CON.png",
    "\u202e\u2066\u200b.png",
    "emoji-\U0001f4a3-\U0001f525.png",
    "line\nbreak\r.png",
]


def ordinary_files(folder: Path, n: int) -> list[Path]:
    """`n` distinct good files of every media type in turn (notes, a picture, a tone, a clip)."""
    folder.mkdir(parents=True, exist_ok=True)

    def picture(i: int) -> Path:
        path = folder / f"picture{i}.png"
        Image.fromarray(mf.image_array((160, 120), i)).save(path)
        return path

    makers = [
        lambda i: mf.make_markdown(folder / f"notes{i}.md", sections=2 + i, words_per_section=60),
        picture,
        lambda i: mf.make_wav(folder / f"tone{i}.wav", pattern=[("chord", 1.0 + i / 10)]),
        lambda i: mf.make_video(folder / f"clip{i}.mp4", seconds=1 + i % 2, scenes=2, size=(96 + 2 * i, 64)),
    ]
    return [makers[i % len(makers)](i) for i in range(n)]
