"""Image, audio and document analysis, and the shared visual features."""

from __future__ import annotations

import io
import itertools
import json
import re

import media_factory as mf
import numpy as np
import pytest
from PIL import Image

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file, sniff_and_probe
from dataflux_pipelines.media.audio import analyze_audio, loudness_stats, segment_audio
from dataflux_pipelines.media.documents import chunk_text, html_to_text
from dataflux_pipelines.media.features import dominant_palette, encode_jpeg, style_labels, visual_features

OPTIONS = AnalysisOptions()


def _analyze(path, options=OPTIONS):
    probe = sniff_and_probe(str(path))
    return probe, analyze_file(str(path), probe, options)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        return image.size


# --- features --------------------------------------------------------------------------------------


def test_a_flat_grey_picture_has_no_colour_no_contrast_and_no_sharpness():
    grey = np.full((64, 64, 3), 128, np.uint8)
    features = visual_features(grey)
    assert features["brightness"] == pytest.approx(128 / 255, abs=1e-3)
    assert features["contrast"] == 0 and features["saturation"] == 0
    assert features["colourfulness"] == 0 and features["sharpness"] == 0
    assert features["palette"] == [{"hex": "#808080", "share": 1.0}]


def test_fine_detail_is_sharper_than_its_blurred_copy_and_red_is_warmer_than_blue():
    checker = (np.indices((128, 128)).sum(axis=0) % 2 * 255).astype(np.uint8)
    crisp = np.repeat(checker[..., None], 3, axis=2)
    blurred = np.asarray(
        Image.fromarray(crisp).resize((16, 16)).resize((128, 128), Image.Resampling.BILINEAR)
    )
    assert visual_features(crisp)["sharpness"] > 10 * visual_features(blurred)["sharpness"]
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    blue = red[..., ::-1].copy()
    assert visual_features(red)["warmth"] > 0.5 > -0.5 > visual_features(blue)["warmth"]
    assert visual_features(red)["colourfulness"] > 59
    assert style_labels(visual_features(red))["colour"] == "vivid"


def test_the_palette_finds_two_colours_with_their_shares():
    rgb = np.zeros((40, 100, 3), np.uint8)
    rgb[:, :75] = (255, 0, 0)
    rgb[:, 75:] = (0, 0, 255)
    palette = dominant_palette(rgb, k=5)
    assert palette[0] == {"hex": "#ff0000", "share": 0.75}
    assert palette[1] == {"hex": "#0000ff", "share": 0.25}


def test_saturation_is_the_mean_hsv_saturation_of_the_analysed_picture():
    rgb = np.random.default_rng(4).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    rgb[:50] = 0  # black rows: saturation 0 where the maximum is 0
    f = rgb.astype(np.float32) / 255.0
    mx, mn = f.max(axis=2), f.min(axis=2)
    expected = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0).mean()
    assert visual_features(rgb)["saturation"] == round(float(expected), 4)


def test_one_downscale_serves_keyframe_thumbnail_and_features(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)).save(path)
    _, analysis = _analyze(path)
    [segment] = analysis.segments
    assert _jpeg_size(segment.keyframe_jpeg) == (512, 288)
    assert _jpeg_size(segment.thumbnail_jpeg) == (256, 144)
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB"))
    # The features are those of the full picture (they scale it to the same 512 px themselves).
    assert segment.visual_features == visual_features(full)


def test_encode_jpeg_limits_the_long_side_and_never_upscales():
    rgb = mf.image_array((1000, 400))
    assert _jpeg_size(encode_jpeg(rgb, 512)) == (512, 205)
    assert _jpeg_size(encode_jpeg(rgb[:50, :80], 512)) == (80, 50)


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_every_image_format_yields_one_image_segment_with_features_keyframe_and_thumbnail(tmp_path, fmt):
    _, analysis = _analyze(mf.make_image(tmp_path / f"i.{fmt.lower()}", fmt, size=(800, 600)))
    assert analysis.media_type == "image"
    [segment] = analysis.segments
    assert segment.segment_type == "image"
    assert _jpeg_size(segment.keyframe_jpeg) == (512, 384)
    assert _jpeg_size(segment.thumbnail_jpeg) == (256, 192)
    features = segment.visual_features
    assert set(features) >= {"brightness", "contrast", "saturation", "colourfulness", "sharpness", "palette"}
    assert 0 < features["brightness"] < 1 and features["colourfulness"] > 15 and features["sharpness"] > 0
    assert len(features["palette"]) == 5
    assert sum(c["share"] for c in features["palette"]) == pytest.approx(1.0, abs=0.01)
    assert set(segment.style_features) == {"tone", "contrast", "colour", "temperature", "focus"}
    assert segment.technical_features["width"] == 800
    json.dumps(segment.technical_features)
    assert analysis.thumbnail_jpeg == segment.thumbnail_jpeg


def test_jpeg_exif_reaches_the_segment(tmp_path):
    _, analysis = _analyze(mf.make_image(tmp_path / "i.jpg", "JPEG"))
    assert analysis.segments[0].technical_features["exif"]["Model"] == "Factory 1"


def test_an_image_wider_than_the_tile_threshold_also_gets_tiles_covering_it(tmp_path):
    path = tmp_path / "panorama.png"
    Image.fromarray(mf.image_array((5000, 300))).save(path)
    _, analysis = _analyze(path, AnalysisOptions(tile_threshold=4096, tile_size=2048))
    whole, *tiles = analysis.segments
    assert whole.segment_type == "image"
    assert [t.segment_type for t in tiles] == ["tile"] * 3
    assert [t.technical_features["bbox"] for t in tiles] == [
        [0, 0, 2048, 300],
        [2048, 0, 2048, 300],
        [4096, 0, 904, 300],
    ]
    assert [t.sequence_number for t in tiles] == [1, 2, 3]
    assert all(t.keyframe_jpeg and t.visual_features["palette"] for t in tiles)


def test_an_animated_gif_becomes_one_segment_per_run_of_similar_frames(tmp_path):
    _, analysis = _analyze(mf.make_gif(tmp_path / "a.gif", 40, duration_ms=100))
    # The background colour changes every 8 frames: 5 runs of 0.8 s.
    assert [(s.start_frame, s.end_frame) for s in analysis.segments] == [
        (0, 7),
        (8, 15),
        (16, 23),
        (24, 31),
        (32, 39),
    ]
    assert [s.start_time for s in analysis.segments] == pytest.approx([0.0, 0.8, 1.6, 2.4, 3.2])
    assert analysis.segments[-1].end_time == pytest.approx(4.0)
    assert analysis.summary["sampled_frames"] == 40
    assert all(s.segment_type == "image" and s.keyframe_jpeg for s in analysis.segments)


def test_an_animated_webp_is_analysed_by_frames_too(tmp_path):
    _, analysis = _analyze(mf.make_animated_webp(tmp_path / "a.webp", 12))
    assert len(analysis.segments) == 3
    assert analysis.segments[-1].end_time == pytest.approx(12 * 0.08)


def test_gif_frames_beyond_the_cap_are_sampled_and_far_beyond_it_refused(tmp_path):
    options = AnalysisOptions(max_gif_frames=10)
    _, analysis = _analyze(mf.make_gif(tmp_path / "a.gif", 40), options)
    assert analysis.summary["sampled_frames"] == 10
    assert analysis.summary["frame_count"] == 40
    with pytest.raises(MediaError) as info:
        _analyze(mf.make_many_frame_gif(tmp_path / "endless.gif", 101), options)
    assert info.value.reason is Reason.TOO_MANY_FRAMES
    assert "more than 100 frames" in info.value.message


# --- audio -----------------------------------------------------------------------------------------


def test_loudness_stats_of_a_full_scale_sine_and_of_silence():
    t = np.arange(16000) / 16000
    sine = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    stats = loudness_stats(sine, 16000)
    assert stats["loudness_dbfs"] == pytest.approx(-3.01, abs=0.05)
    assert stats["peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    assert stats["silence_ratio"] == 0.0
    half = np.concatenate([sine, np.zeros(16000, np.float32)])
    assert loudness_stats(half, 16000)["silence_ratio"] == pytest.approx(0.5, abs=0.02)
    assert loudness_stats(np.zeros(800, np.float32), 16000) == {
        "loudness_dbfs": -120.0,
        "peak_dbfs": -120.0,
        "silence_ratio": 1.0,
    }


def test_a_wav_is_split_into_music_silence_speech_and_music_passages_with_features(tmp_path):
    _, analysis = _analyze(
        mf.make_wav(tmp_path / "a.wav")
    )  # chord 3 s, silence 2, speech 4, noise 2, bursts 2
    passages = [(s.start_time, s.end_time, s.audio_features["class"]) for s in analysis.segments]
    assert passages == [
        (0.0, 3.0, "music"),
        (3.0, 5.0, "silence"),
        (5.0, 9.0, "speech"),
        (9.0, 13.0, "music"),
    ]
    for segment in analysis.segments:
        features = segment.audio_features
        assert segment.segment_type == "audio"
        assert set(features) >= {
            "loudness_dbfs",
            "peak_dbfs",
            "spectral_centroid_hz",
            "zero_crossing_rate",
            "confidence",
        }
        assert 0.5 <= segment.confidence <= 1.0
    chord, silence, speech, _ = analysis.segments
    assert silence.audio_features["loudness_dbfs"] == -120.0
    assert chord.audio_features["loudness_dbfs"] > -20
    assert 400 < chord.audio_features["spectral_centroid_hz"] < 900
    assert speech.audio_features["speech_score"] > 0.5 > chord.audio_features["speech_score"]
    assert analysis.summary["silence_ratio"] == pytest.approx(2 / 13, abs=0.01)


def test_short_passages_are_absorbed_and_long_ones_split():
    samples = mf.audio_samples([("chord", 6.0), ("silence", 1.0), ("chord", 6.0)])
    passages = segment_audio(samples, 16000, min_segment_s=2.0, max_segment_s=5.0)
    assert [p.label for p in passages] == ["music"] * 3
    assert [p.end - p.start for p in passages] == pytest.approx([13 / 3] * 3)


def test_only_speech_like_passages_are_sent_to_the_transcriber(tmp_path):
    calls = []

    def transcribe(samples: np.ndarray, rate: int) -> str:
        calls.append((samples.dtype, samples.size, rate))
        return " hello world "

    path = mf.make_wav(tmp_path / "a.wav")
    analysis = analyze_audio(path, sniff_and_probe(str(path)), OPTIONS, transcribe=transcribe)
    assert calls == [(np.float32, 4 * 16000, 16000)]
    assert [s.transcript for s in analysis.segments] == [None, None, "hello world", None]


def test_compressed_audio_files_are_analysed_after_decoding(tmp_path):
    _, analysis = _analyze(mf.make_audio_file(tmp_path / "a.m4a", "aac", "ipod", seconds=3))
    assert [s.audio_features["class"] for s in analysis.segments] == ["music"]
    assert analysis.segments[0].end_time == pytest.approx(3.0, abs=0.1)


# --- documents -------------------------------------------------------------------------------------


def test_chunks_stay_near_the_word_budget_end_at_sentences_and_overlap():
    text = mf.prose(1000)
    spans = chunk_text(text, chunk_words=225, overlap_words=30)
    assert len(spans) >= 5
    for a, b in spans:
        assert len(text[a:b].split()) <= 225
        assert text[b - 1] == "."
    for (a1, b1), (a2, _) in itertools.pairwise(spans):
        assert a1 < a2 < b1  # the next chunk starts inside the previous one
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_a_sentence_longer_than_a_chunk_is_cut_into_word_runs():
    text = " ".join(f"w{i}" for i in range(500))
    spans = chunk_text(text, chunk_words=200, overlap_words=0)
    assert [len(text[a:b].split()) for a, b in spans] == [200, 200, 100]


def test_pdf_pages_become_page_segments_with_offsets_into_the_page_text(tmp_path):
    pages = [mf.prose(400, seed=0), "A short second page.", ""]
    _, analysis = _analyze(mf.make_pdf(tmp_path / "d.pdf", pages))
    from pypdf import PdfReader

    reader = PdfReader(tmp_path / "d.pdf")
    assert {s.segment_type for s in analysis.segments} == {"page"}
    assert [s.page for s in analysis.segments].count(1) >= 2
    assert analysis.segments[-1].page == 2
    assert analysis.summary["pages_without_text"] == [3]
    for segment in analysis.segments:
        page_text = reader.pages[segment.page - 1].extract_text()
        assert page_text[segment.char_start : segment.char_end] == segment.text
    assert [s.sequence_number for s in analysis.segments] == list(range(len(analysis.segments)))


def test_markdown_and_text_chunks_index_the_file_text(tmp_path):
    for path in (mf.make_markdown(tmp_path / "d.md"), mf.make_text(tmp_path / "d.txt")):
        _, analysis = _analyze(path)
        text = path.read_text(encoding="utf-8")
        assert len(analysis.segments) >= 2
        for segment in analysis.segments:
            assert segment.segment_type == "chunk"
            assert text[segment.char_start : segment.char_end] == segment.text
            assert segment.technical_features["word_count"] <= 225
    assert analysis.summary["format"] == "txt"


def test_html_is_reduced_to_visible_text_without_script_or_style(tmp_path):
    _, analysis = _analyze(mf.make_html(tmp_path / "d.html"))
    joined = " ".join(s.text for s in analysis.segments)
    assert "do not index" not in joined and "color: red" not in joined
    assert joined.startswith("Field notes")
    assert analysis.summary["title"] == "Field notes"
    text, _ = html_to_text((tmp_path / "d.html").read_text())
    assert all(text[s.char_start : s.char_end] == s.text for s in analysis.segments)
    assert re.search(r"\n\n", text)  # paragraphs survive


def test_documents_without_words_fail_with_no_text(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("   \n\n  \n")
    for path in (blank, mf.make_pdf(tmp_path / "scan.pdf", ["", ""])):
        with pytest.raises(MediaError) as info:
            _analyze(path)
        assert info.value.reason is Reason.NO_TEXT
