"""Content sniffing (bytes, never names) and technical probing, including damaged files."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import media_factory as mf
import pytest

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.sniff import sniff_media


def _renamed(path: Path, name: str = "upload.bin") -> Path:
    """The same bytes under a name that says nothing (or lies)."""
    target = path.with_name(f"{path.stem}-{name}")
    path.rename(target)
    return target


MAKERS = {
    "mp4": (lambda p: mf.make_video(p / "v.mp4", seconds=1), ("video", "video/mp4", ".mp4")),
    "mov": (
        lambda p: mf.make_video(p / "v.mov", seconds=1),
        ("video", "video/quicktime", ".mov"),
    ),
    "mkv": (lambda p: mf.make_video(p / "v.mkv", seconds=1), ("video", "video/x-matroska", ".mkv")),
    "avi": (
        lambda p: mf.make_video(p / "v.avi", seconds=1, with_audio=False),
        ("video", "video/x-msvideo", ".avi"),
    ),
    "m4a": (lambda p: mf.make_audio_file(p / "a.m4a", "aac", "ipod"), ("audio", "audio/mp4", ".m4a")),
    "mp4 without video": (
        lambda p: mf.make_audio_file(p / "a.mp4", "aac", "mp4"),
        ("audio", "audio/mp4", ".m4a"),
    ),
    "webm audio": (
        lambda p: mf.make_audio_file(p / "a.webm", "libopus", "webm"),
        ("audio", "audio/webm", ".webm"),
    ),
    "mp3": (lambda p: mf.make_audio_file(p / "a.mp3", "libmp3lame", "mp3"), ("audio", "audio/mpeg", ".mp3")),
    "flac": (lambda p: mf.make_audio_file(p / "a.flac", "flac", "flac"), ("audio", "audio/flac", ".flac")),
    "ogg opus": (
        lambda p: mf.make_audio_file(p / "a.ogg", "libopus", "ogg"),
        ("audio", "audio/ogg", ".opus"),
    ),
    "wav": (lambda p: mf.make_wav(p / "a.wav", [("tone", 1.0)]), ("audio", "audio/wav", ".wav")),
    "jpeg": (lambda p: mf.make_image(p / "i.jpg", "JPEG"), ("image", "image/jpeg", ".jpg")),
    "png": (lambda p: mf.make_image(p / "i.png", "PNG"), ("image", "image/png", ".png")),
    "webp": (lambda p: mf.make_image(p / "i.webp", "WEBP"), ("image", "image/webp", ".webp")),
    "gif": (lambda p: mf.make_gif(p / "i.gif", 3), ("image", "image/gif", ".gif")),
    "tiff": (lambda p: mf.make_image(p / "i.tif", "TIFF"), ("image", "image/tiff", ".tif")),
    "bmp": (lambda p: mf.make_image(p / "i.bmp", "BMP"), ("image", "image/bmp", ".bmp")),
    "pdf": (lambda p: mf.make_pdf(p / "d.pdf", ["Hello"]), ("document", "application/pdf", ".pdf")),
    "html": (lambda p: mf.make_html(p / "d.html"), ("document", "text/html", ".html")),
    "markdown": (lambda p: mf.make_markdown(p / "d.md"), ("document", "text/markdown", ".md")),
    "text": (lambda p: mf.make_text(p / "d.txt"), ("document", "text/plain", ".txt")),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sniffing_names_the_type_from_the_bytes_even_under_a_meaningless_name(tmp_path, kind):
    make, expected = MAKERS[kind]
    path = _renamed(make(tmp_path))
    assert sniff_media(path) == expected


def test_the_ftyp_major_brand_decides_between_quicktime_and_mp4(tmp_path):
    data = mf.make_video(tmp_path / "v.mp4", seconds=1).read_bytes()
    assert data[8:12] == b"isom"
    qt = tmp_path / "qt.bin"
    qt.write_bytes(data[:8] + b"qt  " + data[12:])
    assert sniff_media(qt) == ("video", "video/quicktime", ".mov")


def test_ogg_with_a_theora_stream_is_video_and_with_vorbis_is_audio(tmp_path):
    theora = tmp_path / "t.bin"
    theora.write_bytes(mf.ogg_page(b"\x80theora" + b"\x03\x02\x01" + b"\x00" * 30))
    vorbis = tmp_path / "v.bin"
    vorbis.write_bytes(mf.ogg_page(b"\x01vorbis" + b"\x00" * 22))
    assert sniff_media(theora) == ("video", "video/ogg", ".ogv")
    assert sniff_media(vorbis) == ("audio", "audio/ogg", ".ogg")


def test_mp3_without_an_id3_tag_is_found_by_its_frame_headers(tmp_path):
    data = mf.make_audio_file(tmp_path / "a.mp3", "libmp3lame", "mp3").read_bytes()
    assert data[:3] == b"ID3"
    tag_size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # syncsafe integer
    bare = tmp_path / "bare.bin"
    bare.write_bytes(data[10 + tag_size :])
    assert bare.read_bytes()[0] == 0xFF
    assert sniff_media(bare) == ("audio", "audio/mpeg", ".mp3")


def test_prose_with_a_hash_comment_stays_plain_text(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# not really a heading\nJust a line of prose about #hashtags and prices.\n")
    assert sniff_media(path) == ("document", "text/plain", ".txt")


def test_text_that_mentions_the_pdf_magic_is_still_text(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_text("The header of a PDF file is %PDF-1.7 followed by objects.\n")
    assert sniff_media(path) == ("document", "text/plain", ".txt")


def test_an_empty_file_is_rejected_as_empty(tmp_path):
    path = tmp_path / "nothing.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as info:
        sniff_media(path)
    assert info.value.reason is Reason.EMPTY_FILE


def test_an_elf_binary_named_mp4_is_rejected_naming_the_elf_header(tmp_path):
    with pytest.raises(MediaError) as info:
        sniff_media(mf.make_elf_named_mp4(tmp_path / "movie.mp4"))
    assert info.value.reason is Reason.UNSUPPORTED_MEDIA_TYPE
    assert str(info.value).startswith("unsupported_media_type: file starts with an ELF header")
    assert info.value.message.endswith("not a media container")


def test_archives_are_rejected_with_their_kind_in_the_message(tmp_path):
    zipped = tmp_path / "photo.jpg"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "hello")
    gzipped = tmp_path / "clip.mp4"
    gzipped.write_bytes(gzip.compress(b"hello" * 100))
    with pytest.raises(MediaError, match="ZIP header"):
        sniff_media(zipped)
    with pytest.raises(MediaError, match="gzip header"):
        sniff_media(gzipped)


def test_unknown_binary_bytes_are_shown_as_hex(tmp_path):
    path = tmp_path / "blob.png"
    path.write_bytes(bytes([0x00, 0x13, 0x37, 0xFE, 0xED]) + bytes(range(256)))
    with pytest.raises(MediaError) as info:
        sniff_media(path)
    assert info.value.reason is Reason.UNSUPPORTED_MEDIA_TYPE
    assert "00 13 37 fe ed" in info.value.message


def test_probing_a_video_reads_duration_rate_frames_size_and_codecs(tmp_path):
    probe = probe_media(mf.make_video(tmp_path / "v.mp4", seconds=2, fps=25, size=(160, 120)))
    assert probe.media_type == "video"
    assert probe.duration == pytest.approx(2.0, abs=0.05)
    assert probe.fps == pytest.approx(25.0)
    assert probe.frame_count == 50
    assert (probe.width, probe.height) == (160, 120)
    assert (probe.video_codec, probe.audio_codec) == ("h264", "aac")
    assert probe.sample_rate == 16000 and probe.channels == 1
    assert probe.bit_rate and probe.bit_rate > 0


def test_probing_audio_reads_rate_channels_and_duration(tmp_path):
    probe = probe_media(mf.make_wav(tmp_path / "a.wav", [("tone", 1.5)]))
    assert (probe.media_type, probe.audio_codec, probe.sample_rate, probe.channels) == (
        "audio",
        "pcm_s16le",
        16000,
        1,
    )
    assert probe.duration == pytest.approx(1.5, abs=0.01)
    assert probe.width is None


def test_probing_an_image_reads_its_size_and_json_safe_exif(tmp_path):
    import json

    probe = probe_media(mf.make_image(tmp_path / "i.jpg", "JPEG", size=(300, 200)))
    assert (probe.width, probe.height, probe.frame_count) == (300, 200, 1)
    assert probe.exif["Make"] == "DataFlux Test Camera"
    assert probe.exif["DateTime"] == "2024:05:17 10:30:00"
    json.dumps(probe.exif)


def test_probing_an_animated_gif_counts_its_frames(tmp_path):
    probe = probe_media(mf.make_gif(tmp_path / "a.gif", 24))
    assert probe.frame_count == 24
    assert probe.fps == pytest.approx(10.0)


def test_probing_a_pdf_counts_pages(tmp_path):
    probe = probe_media(mf.make_pdf(tmp_path / "d.pdf", ["one", "two", "three"]))
    assert probe.page_count == 3
    assert probe.extra["encrypted"] is False


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-at-end", "moov-at-start"])
def test_the_first_60_percent_of_an_mp4_is_truncated_media(tmp_path, faststart):
    path = mf.make_truncated_mp4(tmp_path / "cut.mp4", fraction=0.6, faststart=faststart)
    with pytest.raises(MediaError) as info:
        probe_media(path)
    assert info.value.reason is Reason.TRUNCATED_MEDIA
    assert "truncated" in info.value.message


@pytest.mark.parametrize("container", ["mkv", "avi"])
def test_a_cut_off_matroska_or_avi_is_truncated_media(tmp_path, container):
    full = mf.make_video(tmp_path / f"full.{container}", seconds=6)
    assert probe_media(full).duration == pytest.approx(6.0, abs=0.2)
    cut = tmp_path / f"cut.{container}"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    with pytest.raises(MediaError) as info:
        probe_media(cut)
    assert info.value.reason is Reason.TRUNCATED_MEDIA


def test_an_image_header_followed_by_garbage_is_corrupt(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x13\x37" * 200)
    with pytest.raises(MediaError) as info:
        probe_media(path)
    assert info.value.reason is Reason.CORRUPT_MEDIA


def test_a_png_claiming_more_than_twice_pillows_pixel_limit_is_a_decompression_bomb(tmp_path):
    path = mf.make_bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 200_000
    with pytest.raises(MediaError) as info:
        probe_media(path)
    assert info.value.reason is Reason.DECOMPRESSION_BOMB


def test_a_password_protected_pdf_is_an_encrypted_document(tmp_path):
    with pytest.raises(MediaError) as info:
        probe_media(mf.make_encrypted_pdf(tmp_path / "locked.pdf"))
    assert info.value.reason is Reason.ENCRYPTED_DOCUMENT


def test_a_pdf_whose_page_tree_and_xref_loop_fails_as_corrupt_instead_of_hanging(tmp_path):
    with pytest.raises(MediaError) as info:
        probe_media(mf.make_looping_pdf(tmp_path / "loop.pdf"))
    assert info.value.reason is Reason.CORRUPT_MEDIA
    assert "cyclic" in info.value.message
