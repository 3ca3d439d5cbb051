"""Technical facts about a media file (duration, streams, size, pages, EXIF), with damage detected early."""

from __future__ import annotations

import mmap
import struct
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.sniff import sniff_media
from dataflux_pipelines.media.types import Probe
from dataflux_pipelines.records import MediaType

# A container that claims more than this much beyond the last decodable frame is damaged.
_TAIL_SECONDS = 1.5


def probe_media(path: Path) -> Probe:
    """Sniff the bytes, then read the technical facts; damaged files raise MediaError."""
    path = Path(path)
    media_type, mime_type, extension = sniff_media(path)
    probe = Probe(media_type=media_type, mime_type=mime_type, extension=extension)
    probe.extra["file_size"] = path.stat().st_size
    if media_type in (MediaType.VIDEO, MediaType.AUDIO):
        _probe_av(path, probe)
    elif media_type == MediaType.IMAGE:
        _probe_image(path, probe)
    elif mime_type == "application/pdf":
        _probe_pdf(path, probe)
    else:
        _probe_text(path, probe)
    return probe


# --- video and audio -----------------------------------------------------------------------


def check_iso_boxes(path: Path) -> None:
    """Walk an MP4/MOV's top-level boxes: a box running past the end of the file, or no `moov`
    box, means the file was cut off (a partial download or copy)."""
    size = path.stat().st_size
    found: list[str] = []
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            header = f.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            name = kind.decode("latin-1")
            if box_size == 1 and len(header) >= 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # "to the end of the file"
                box_size = size - pos
            if box_size < 8:
                raise MediaError(
                    Reason.CORRUPT_MEDIA, f"MP4 box {name!r} at byte {pos} has an invalid size {box_size}"
                )
            if pos + box_size > size:
                missing = "" if "moov" in found else "; the moov box (the index of all samples) is missing"
                raise MediaError(
                    Reason.TRUNCATED_MEDIA,
                    f"MP4 box {name!r} at byte {pos} declares {box_size} bytes but the file ends after "
                    f"{size - pos}{missing}: the file is truncated",
                )
            found.append(name)
            pos += box_size
    if "moov" not in found:
        raise MediaError(
            Reason.TRUNCATED_MEDIA,
            "MP4 file has no moov box (the index of all samples): truncated or incomplete",
        )


def check_riff_sizes(path: Path) -> None:
    """A WAV whose header claims far more sample data than the file holds is `truncated_media`.

    Decoders read such a file happily and report the header's duration; a file cut short in transit
    must not pass as hours of audio.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF":
            return
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                held = size - f.tell()
                if length > 1.5 * held and length - held > 1024 * 1024:
                    raise MediaError(
                        Reason.TRUNCATED_MEDIA,
                        f"the WAV header announces {length} bytes of samples, the file holds {held}",
                    )
                return
            f.seek(length + (length & 1), 1)


def _seconds(value: Any, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _probe_av(path: Path, probe: Probe) -> None:
    import av

    if probe.mime_type in ("video/mp4", "video/quicktime", "audio/mp4"):
        check_iso_boxes(path)
    if probe.extension == ".wav":
        check_riff_sizes(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except MemoryError:
        raise  # PyAV's ENOMEM is an FFmpegError too: leave it to the worker's memory-limit handling
    except av.error.InvalidDataError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the container cannot be read: {exc}") from exc
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the container cannot be opened: {exc}") from exc
    with container:
        video = next(
            (s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)),
            None,
        )
        audio = container.streams.audio[0] if container.streams.audio else None
        if probe.media_type == MediaType.VIDEO and video is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "the video container holds no video stream")
        if probe.media_type == MediaType.AUDIO and audio is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "the audio file holds no audio stream")
        duration = container.duration / av.time_base if container.duration else None
        probe.bit_rate = container.bit_rate or None
        probe.extra["container"] = container.format.name
        if video is not None:
            ctx = video.codec_context
            probe.video_codec = ctx.name
            probe.width, probe.height = ctx.width or None, ctx.height or None
            rate = video.average_rate or video.guessed_rate
            probe.fps = float(rate) if rate else None
            stream_duration = _seconds(video.duration, video.time_base)
            duration = stream_duration or duration
            if video.frames:
                probe.frame_count = int(video.frames)
            elif duration and probe.fps:
                # Matroska/WebM and some AVIs store no frame count: estimate from duration × rate.
                probe.frame_count = round(duration * probe.fps)
                probe.extra["frame_count_estimated"] = True
            if ctx.pix_fmt:
                probe.extra["pixel_format"] = ctx.pix_fmt
        if audio is not None:
            actx = audio.codec_context
            probe.audio_codec = actx.name
            probe.sample_rate = actx.sample_rate or None
            probe.channels = actx.channels or None
            if duration is None:
                duration = _seconds(audio.duration, audio.time_base)
        probe.duration = duration
        if video is not None:
            _check_video_complete(container, video, probe)
        elif audio is not None:
            _check_audio_decodes(container, audio)


def _check_video_complete(container: Any, video: Any, probe: Probe) -> None:
    """The first frame must decode, and packets must reach the end the header claims (its duration, or
    its frame count at the frame rate): a file cut short has an index promising more than is there."""
    import av

    try:
        if next(container.decode(video), None) is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "no video frame could be decoded")
        claimed = probe.duration or 0.0
        if video.frames and probe.fps:
            claimed = max(claimed, video.frames / probe.fps)
        if claimed <= 2 * _TAIL_SECONDS:
            return
        try:
            container.seek(int((claimed - 2 * _TAIL_SECONDS) * av.time_base), backward=True)
        except MemoryError:
            raise
        except av.FFmpegError:
            container.seek(0)  # no usable index: read the packets from the start instead
        last_end = None
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            last_end = end if last_end is None else max(last_end, end)
        if last_end is None or last_end < claimed - _TAIL_SECONDS:
            seen = "no packet" if last_end is None else f"data only up to {last_end:.2f} s"
            raise MediaError(
                Reason.TRUNCATED_MEDIA,
                f"the container claims {claimed:.2f} s of video but holds {seen}: the file is truncated",
            )
    except MemoryError:
        raise
    except av.error.InvalidDataError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"video data cannot be decoded: {exc}") from exc
    except av.FFmpegError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"video decoding failed: {exc}") from exc


def _check_audio_decodes(container: Any, audio: Any) -> None:
    import av

    try:
        if next(container.decode(audio), None) is None:
            raise MediaError(Reason.CORRUPT_MEDIA, "no audio frame could be decoded")
    except MemoryError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"audio decoding failed: {exc}") from exc


# --- images --------------------------------------------------------------------------------


def _json_safe(value: Any, depth: int = 0) -> Any:
    """EXIF values as JSON types; binary blobs (maker notes, thumbnails) are dropped."""
    from PIL.TiffImagePlugin import IFDRational

    if isinstance(value, IFDRational):
        return None if value.denominator == 0 else float(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "").strip()[:1000]
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii").replace("\x00", "").strip()
        except UnicodeDecodeError:
            return None
        return text[:1000] if text.isprintable() else None
    if isinstance(value, tuple | list) and depth < 2 and len(value) <= 64:
        items = [_json_safe(v, depth + 1) for v in value]
        return None if any(v is None for v in items) else items
    return None


def read_exif(image: Any) -> dict[str, Any]:
    """EXIF tags of a Pillow image (base IFD, Exif IFD and GPS IFD) by name, JSON-safe values only."""
    from PIL import ExifTags

    exif = image.getexif()
    out: dict[str, Any] = {}
    for tag, value in exif.items():
        if tag in (ExifTags.Base.ExifOffset, ExifTags.Base.GPSInfo):
            continue
        safe = _json_safe(value)
        if safe is not None:
            out[ExifTags.TAGS.get(tag, str(tag))] = safe
    for ifd, names in ((ExifTags.IFD.Exif, ExifTags.TAGS), (ExifTags.IFD.GPSInfo, ExifTags.GPSTAGS)):
        try:
            values = exif.get_ifd(ifd)
        except (KeyError, ValueError, struct.error, OSError):
            continue  # an unreadable sub-IFD loses only its tags
        for tag, value in values.items():
            safe = _json_safe(value)
            if safe is not None:
                out[names.get(tag, str(tag))] = safe
    return out


def open_image(path: Path) -> Any:
    """Open an image with Pillow's decompression-bomb limit in force; damage raises MediaError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Between 1× and 2× MAX_IMAGE_PIXELS Pillow only warns; the worker's memory limit covers that.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise MediaError(Reason.DECOMPRESSION_BOMB, f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, "the image header cannot be read") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the image cannot be opened: {exc}") from exc


def _probe_image(path: Path, probe: Probe) -> None:

    image = open_image(path)
    with image:
        probe.width, probe.height = image.size
        probe.extra["mode"] = image.mode
        probe.extra["format"] = image.format
        try:
            probe.exif = read_exif(image)
        except (OSError, SyntaxError, ValueError, struct.error):
            probe.exif = {}
            probe.extra["exif_error"] = "EXIF block could not be parsed"
        frames = count_frames(path, probe.mime_type, image)
        probe.frame_count = frames
        if frames > 1:
            durations = image.info.get("duration")
            if durations:
                probe.fps = round(1000.0 / float(durations), 3) if durations else None


# --- documents -----------------------------------------------------------------------------


def open_pdf(path: Path) -> Any:
    """A pypdf reader, decrypted when the document opens with an empty password."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            # Owner-password-only PDFs (print/copy restrictions) open with an empty user password.
            try:
                if not reader.decrypt(""):
                    raise MediaError(Reason.ENCRYPTED_DOCUMENT, "the PDF is encrypted and needs a password")
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise MediaError(
                    Reason.ENCRYPTED_DOCUMENT, f"the PDF is encrypted and cannot be opened: {exc}"
                ) from exc
        return reader
    except MediaError:
        raise
    except RecursionError as exc:
        raise MediaError(
            Reason.CORRUPT_MEDIA, "the PDF's object structure loops or nests too deeply"
        ) from exc
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the PDF cannot be parsed: {exc}") from exc


def pdf_page_count(reader: Any) -> int:
    from pypdf.errors import PyPdfError

    try:
        return len(reader.pages)
    except RecursionError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, "the PDF page tree loops or nests too deeply") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the PDF page tree cannot be read: {exc}") from exc


def _probe_pdf(path: Path, probe: Probe) -> None:
    reader = open_pdf(path)
    probe.page_count = pdf_page_count(reader)
    probe.extra["encrypted"] = bool(reader.is_encrypted)
    try:
        info = reader.metadata or {}
        for key in ("/Title", "/Author", "/Producer", "/Creator"):
            if key in info and isinstance(info[key], str):
                probe.extra[key.strip("/").lower()] = str(info[key])[:500]
    except Exception as exc:  # metadata is optional; a broken Info dictionary must not fail the file
        probe.extra["metadata_error"] = f"{type(exc).__name__}: {exc}"[:200]


def _probe_text(path: Path, probe: Probe) -> None:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"text is not valid UTF-8 at byte {exc.start}") from exc
    probe.extra["encoding"] = "utf-8"
    probe.extra["characters"] = len(text)
    probe.extra["lines"] = text.count("\n") + (0 if text.endswith("\n") or not text else 1)


# --- frame counting from the container structure (GIF blocks, WebP chunks) ---------------


def _count_gif_frames(data: bytes | mmap.mmap, stop_after: int) -> int:
    """Image descriptors in a GIF, found by skipping data sub-blocks without decoding them."""
    if len(data) < 13:
        raise MediaError(Reason.TRUNCATED_MEDIA, "GIF file ends inside its header")
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    frames = 0
    size = len(data)
    while pos < size:
        marker = data[pos]
        if marker == 0x3B:  # trailer
            break
        if marker == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif marker == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > size:
                break
            local = data[pos + 9]
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1
            frames += 1
            if frames > stop_after:
                return frames
        else:
            break  # garbage after the last frame: browsers stop here too
        while pos < size and data[pos] != 0:
            pos += data[pos] + 1
        pos += 1
    return frames


def _count_webp_frames(data: bytes | mmap.mmap) -> int:
    pos, frames, animated = 12, 0, False
    size = len(data)
    while pos + 8 <= size:
        kind = bytes(data[pos : pos + 4])
        length = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if kind == b"ANIM":
            animated = True
        elif kind == b"ANMF":
            frames += 1
        pos += 8 + length + (length & 1)
    return frames if animated and frames else 1


def count_frames(path: Path, mime_type: str, image: Any, stop_after: int = 10**7) -> int:
    """Frames in an image file, counted from the container structure without decoding pixels."""
    if mime_type in ("image/gif", "image/webp"):
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if mime_type == "image/gif":
                return max(1, _count_gif_frames(data, stop_after))
            return _count_webp_frames(data)
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"the frames of the image cannot be counted: {exc}") from exc
