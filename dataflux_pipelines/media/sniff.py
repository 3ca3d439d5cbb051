"""What a file is, from its bytes alone: magic numbers, container brands and text structure."""

from __future__ import annotations

import codecs
import re
import struct
from pathlib import Path

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.records import MediaType

HEAD_BYTES = 64 * 1024

VIDEO, IMAGE, AUDIO, DOCUMENT = (
    MediaType.VIDEO.value,
    MediaType.IMAGE.value,
    MediaType.AUDIO.value,
    MediaType.DOCUMENT.value,
)

# Byte prefixes that are common and certainly not media, named in the rejection message.
_NOT_MEDIA = [
    (b"\x7fELF", "an ELF header (a Linux executable or library)"),
    (b"MZ", "a PE/DOS header (a Windows executable)"),
    (b"PK\x03\x04", "a ZIP header (an archive or an office document)"),
    (b"PK\x05\x06", "an empty ZIP archive header"),
    (b"\x1f\x8b\x08", "a gzip header (a compressed archive)"),
    (b"BZh", "a bzip2 header (a compressed archive)"),
    (b"\xfd7zXZ\x00", "an xz header (a compressed archive)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip header (an archive)"),
    (b"Rar!\x1a\x07", "a RAR header (an archive)"),
    (b"\x28\xb5\x2f\xfd", "a zstd header (a compressed archive)"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal / Java class header"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O header (a macOS executable)"),
    (b"SQLite format 3\x00", "an SQLite database header"),
    (b"PAR1", "a Parquet header (a data file)"),
]

_ISO_AUDIO_BRANDS = {"M4A ", "M4B ", "M4P ", "F4A ", "F4B "}
_ISO_QT_BRANDS = {"qt  "}
_ISO_HEIF_BRANDS = {"heic", "heix", "heim", "heis", "mif1", "msf1", "avif", "avis"}

_MP3_BITRATES_V1_L3 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0]
_MP3_BITRATES_V2_L3 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0]
_MP3_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}

_HTML_RE = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL)
_MD_HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^\S.*\n(?:=+|-+)\s*$", re.MULTILINE)
_MD_LIST = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+\S", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[[^\]\n]+\]\([^)\s]+(?:\s+\"[^\"]*\")?\)")
_MD_FENCE = re.compile(r"^\s{0,3}(?:```|~~~)", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__)\S[^\n]*?\S\1|`[^`\n]+`")
_MD_QUOTE = re.compile(r"^>\s", re.MULTILINE)
_MD_TABLE = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$", re.MULTILINE)


def _unsupported(what: str) -> MediaError:
    return MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"file starts with {what}, not a media container")


def _iso_major_brand(head: bytes) -> str:
    return head[8:12].decode("latin-1")


def _probe_streams(path: Path) -> tuple[bool, bool] | None:
    """(has video, has audio) from the container header, or None when it cannot be opened."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            # A still cover picture in an audio file is a "video" stream with the attached_pic flag.
            video = any(
                not (s.disposition & av.stream.Disposition.attached_pic) for s in container.streams.video
            )
            return video, bool(container.streams.audio)
    except MemoryError:
        raise  # PyAV's ENOMEM is an FFmpegError too: leave it to the worker's memory-limit handling
    except (av.FFmpegError, OSError, ValueError):
        return None


def _ebml_doctype(head: bytes) -> str:
    index = head.find(b"\x42\x82")  # DocType element id
    if index < 0 or index + 3 > len(head):
        return "matroska"
    length_byte = head[index + 2]
    if length_byte & 0x80:
        length = length_byte & 0x7F
        return head[index + 3 : index + 3 + length].decode("ascii", "replace")
    return "matroska"


def _mp3_frame_length(head: bytes, pos: int) -> int:
    """Length of the MPEG-1/2 layer III frame whose header starts at `pos`, or 0 if none does."""
    if pos + 4 > len(head) or head[pos] != 0xFF or (head[pos + 1] & 0xE0) != 0xE0:
        return 0
    b1, b2 = head[pos + 1], head[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return 0
    rate = _MP3_RATES[version][rate_index]
    if version == 3:
        return 144000 * _MP3_BITRATES_V1_L3[bitrate_index] // rate + padding
    return 72000 * _MP3_BITRATES_V2_L3[bitrate_index] // rate + padding


def _looks_like_mp3_frames(head: bytes) -> bool:
    """A valid layer III frame header followed by another one: one sync word alone is too common."""
    length = _mp3_frame_length(head, 0)
    if not length:
        return False
    if length + 4 > len(head):
        return True  # the file (or head) ends inside the first frame
    return bool(_mp3_frame_length(head, length))


def _looks_like_adts(head: bytes) -> bool:
    if len(head) < 7 or head[0] != 0xFF or (head[1] & 0xF6) != 0xF0:
        return False
    length = ((head[3] & 0x03) << 11) | (head[4] << 3) | (head[5] >> 5)
    return length >= 7 and (
        length + 2 > len(head) or (head[length] == 0xFF and (head[length + 1] & 0xF6) == 0xF0)
    )


def _id3_end(head: bytes) -> int:
    size = head[6:10]
    return 10 + ((size[0] & 0x7F) << 21 | (size[1] & 0x7F) << 14 | (size[2] & 0x7F) << 7 | (size[3] & 0x7F))


def _as_text(head: bytes, complete: bool) -> str | None:
    """The head as UTF-8 text, or None if it is binary (NUL bytes or invalid UTF-8)."""
    if b"\x00" in head:
        return None
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # final=False lets a multibyte character cut at the end of the head pass.
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None


def _is_markdown(text: str) -> bool:
    """Markdown structure: a heading plus one more markdown construct, or three kinds of them."""
    signals = {
        "heading": bool(_MD_HEADING.search(text) or _MD_SETEXT.search(text)),
        "list": len(_MD_LIST.findall(text)) >= 2,
        "link": bool(_MD_LINK.search(text)),
        "fence": bool(_MD_FENCE.search(text)),
        "emphasis": bool(_MD_EMPHASIS.search(text)),
        "quote": bool(_MD_QUOTE.search(text)),
        "table": bool(_MD_TABLE.search(text)),
    }
    count = sum(signals.values())
    return (signals["heading"] and count >= 2) or count >= 3


def sniff_bytes(head: bytes, complete: bool = True) -> tuple[str, str, str] | None:
    """(media_type, mime_type, extension) decided from leading bytes alone; None when only the
    container's streams can tell (ISO BMFF and Matroska: audio-only or video)."""
    if head.startswith(b"\xff\xd8\xff"):
        return IMAGE, "image/jpeg", ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return IMAGE, "image/png", ".png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return IMAGE, "image/gif", ".gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return IMAGE, "image/tiff", ".tif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return IMAGE, "image/webp", ".webp"
        if kind == b"WAVE":
            return AUDIO, "audio/wav", ".wav"
        if kind == b"AVI ":
            return VIDEO, "video/x-msvideo", ".avi"
        raise _unsupported(f"a RIFF header of type {kind!r}")
    if head.startswith(b"BM") and len(head) >= 18:
        dib_size = struct.unpack("<I", head[14:18])[0]
        if dib_size in (12, 40, 52, 56, 64, 108, 124):
            return IMAGE, "image/bmp", ".bmp"
    if head.startswith(b"fLaC"):
        return AUDIO, "audio/flac", ".flac"
    if head.startswith(b"OggS"):
        # A Theora stream anywhere in the first pages makes the Ogg a video.
        if b"\x80theora" in head:
            return VIDEO, "video/ogg", ".ogv"
        if b"OpusHead" in head:
            return AUDIO, "audio/ogg", ".opus"
        if b"\x01vorbis" in head or b"\x7fFLAC" in head or b"Speex   " in head:
            return AUDIO, "audio/ogg", ".ogg"
        raise _unsupported("an Ogg header with no Vorbis, Opus, FLAC or Theora stream")
    if head.startswith(b"ID3") and len(head) >= 10:
        end = _id3_end(head)
        if head[end : end + 4] == b"fLaC":
            return AUDIO, "audio/flac", ".flac"
        return AUDIO, "audio/mpeg", ".mp3"
    if _looks_like_mp3_frames(head):
        return AUDIO, "audio/mpeg", ".mp3"
    if _looks_like_adts(head):
        return AUDIO, "audio/aac", ".aac"
    pdf_at = head.find(b"%PDF-", 0, 1024)
    # Readers accept junk before the header; text that merely mentions "%PDF-" is not a PDF.
    if pdf_at == 0 or (pdf_at > 0 and (not head[:pdf_at].strip() or _as_text(head[:pdf_at], True) is None)):
        return DOCUMENT, "application/pdf", ".pdf"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        major = _iso_major_brand(head)
        if major in _ISO_HEIF_BRANDS:
            raise _unsupported(f"an HEIF/AVIF image header (brand {major.strip()!r})")
        return None
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    text = _as_text(head, complete)
    for prefix, what in _NOT_MEDIA:
        # Two-letter magics ("MZ", "BZh") also begin ordinary words: only binary files count.
        if head.startswith(prefix) and (len(prefix) > 3 or text is None):
            raise _unsupported(what)
    if text is not None:
        if _HTML_RE.match(head.removeprefix(codecs.BOM_UTF8)):
            return DOCUMENT, "text/html", ".html"
        if _is_markdown(text):
            return DOCUMENT, "text/markdown", ".md"
        return DOCUMENT, "text/plain", ".txt"
    raise MediaError(
        Reason.UNSUPPORTED_MEDIA_TYPE,
        f"file starts with unknown bytes {head[:16].hex(' ')}, not a supported media container",
    )


def sniff_media(path: Path) -> tuple[str, str, str]:
    """(media_type, mime_type, extension) of a file from its bytes; never from its name."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        complete = len(head) < HEAD_BYTES or not f.read(1)
    if not head:
        raise MediaError(Reason.EMPTY_FILE, "file is empty (0 bytes)")
    found = sniff_bytes(head, complete)
    if found is not None:
        return found
    streams = _probe_streams(path)
    if head[4:8] == b"ftyp":
        major = _iso_major_brand(head)
        audio_brand = major in _ISO_AUDIO_BRANDS
        if streams is not None:
            has_video, has_audio = streams
            if not has_video and has_audio:
                return AUDIO, "audio/mp4", ".m4a"
            if not has_video and not has_audio:
                raise MediaError(
                    Reason.CORRUPT_MEDIA, "MP4/QuickTime container holds no audio or video stream"
                )
        elif audio_brand:
            return AUDIO, "audio/mp4", ".m4a"
        if major in _ISO_QT_BRANDS:
            return VIDEO, "video/quicktime", ".mov"
        return VIDEO, "video/mp4", ".mp4"
    doctype = _ebml_doctype(head)
    webm = doctype == "webm"
    if streams is not None and not streams[0] and streams[1]:
        return (AUDIO, "audio/webm", ".webm") if webm else (AUDIO, "audio/x-matroska", ".mka")
    return (VIDEO, "video/webm", ".webm") if webm else (VIDEO, "video/x-matroska", ".mkv")


# What a file name's extension claims (lower case, with the dot). Names with other extensions, or none,
# claim nothing: the bytes decide.
_CLAIMS = {
    **{
        e: VIDEO
        for e in (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
    },
    **{
        e: IMAGE
        for e in (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif")
    },
    **{e: AUDIO for e in (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff")},
    **{e: DOCUMENT for e in (".pdf", ".txt", ".md", ".markdown", ".html", ".htm")},
}
# Containers that hold audio, video or both: a ".mp4" holding only sound is audio, not a lie.
_COMPATIBLE = {frozenset({VIDEO, AUDIO})}


def claimed_media_type(filename: str | None) -> str | None:
    """The media type a file name claims by its extension, if it claims one."""
    if not filename or "." not in filename:
        return None
    return _CLAIMS.get("." + filename.rsplit(".", 1)[-1].lower())


def check_claim(filename: str | None, media_type: str) -> str | None:
    """Refuse a file whose name claims a media type its bytes are not (`type_mismatch`).

    A container named for video that holds only audio (or the reverse) is accepted; the returned
    warning says so, for the asset's metadata.
    """
    claimed = claimed_media_type(filename)
    if claimed is None or claimed == media_type:
        return None
    if frozenset({claimed, media_type}) in _COMPATIBLE:
        return f"the name {filename!r} suggests {claimed}, but the container holds only {media_type}"
    raise MediaError(
        Reason.TYPE_MISMATCH,
        f"the name {filename!r} says {claimed}, but the bytes are {media_type}: rename or re-export the file",
    )
