"""Streaming audio analysis: the same passages as the in-memory path, without holding the track."""

from __future__ import annotations

import tracemalloc

import media_factory as mf
import numpy as np
import pytest

from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file, sniff_and_probe
from dataflux_pipelines.media.audio import (
    analyze_audio,
    decode_audio,
    decode_audio_span,
    describe_passage,
    loudness_stats,
    segment_audio,
)

# About 3 minutes 19 s: every class, passages long enough to be split, and a last partial 20 ms frame.
LONG_PATTERN = [
    ("chord", 3.0),
    ("silence", 2.0),
    ("speech", 4.0),
    ("noise", 2.0),
    ("bursts", 2.0),
    ("speech", 31.3),
    ("tone", 5.5037),
] * 4
RATE = 16000


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    return mf.make_wav(tmp_path_factory.mktemp("audio") / "long.wav", LONG_PATTERN)


def test_a_three_minute_file_streams_to_the_same_passages_features_and_transcriber_input_as_in_memory(
    long_wav,
):
    options = AnalysisOptions(max_audio_segment_s=10.0)
    sent: list[np.ndarray] = []

    def transcribe(samples: np.ndarray, rate: int) -> str:
        sent.append(samples.copy())
        return f"passage {len(sent)}"

    analysis = analyze_audio(str(long_wav), sniff_and_probe(str(long_wav)), options, transcribe=transcribe)

    samples = decode_audio(long_wav)
    assert samples.size % 320 != 0  # the last frame is partial, as in the pattern
    passages = segment_audio(samples, RATE, options.min_audio_segment_s, options.max_audio_segment_s)
    assert len(analysis.segments) == len(passages) > 20
    assert {p.label for p in passages} == {"music", "silence", "speech"}
    for segment, passage in zip(analysis.segments, passages, strict=True):
        features, confidence = describe_passage(samples, RATE, passage)
        assert (segment.start_time, segment.end_time) == (round(passage.start, 3), round(passage.end, 3))
        assert segment.audio_features == features
        assert segment.confidence == confidence
    speech = [p for p in passages if p.label == "speech"]
    assert len(sent) == len(speech)
    for got, passage in zip(sent, speech, strict=True):
        np.testing.assert_array_equal(got, samples[round(passage.start * RATE) : round(passage.end * RATE)])
    whole = loudness_stats(samples, RATE)
    assert analysis.summary["loudness_dbfs"] == whole["loudness_dbfs"]
    assert analysis.summary["peak_dbfs"] == whole["peak_dbfs"]
    assert analysis.summary["duration"] == round(samples.size / RATE, 3)


def test_streaming_analysis_holds_far_less_than_the_decoded_track(long_wav):
    track_bytes = decode_audio(long_wav).nbytes  # about 12.7 MB of float32
    probe = sniff_and_probe(str(long_wav))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        analysis = analyze_file(str(long_wav), probe, AnalysisOptions(max_audio_segment_s=5.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(analysis.segments) > 40
    # Per-frame features, one 10 s measuring block and one 5 s passage: well under half the track
    # (the whole-track decode alone peaks at about twice the track).
    assert peak < track_bytes / 2


@pytest.mark.parametrize(
    "make",
    [
        lambda d: mf.make_wav(d / "a.wav", LONG_PATTERN[:7]),
        lambda d: mf.make_wav(d / "b.wav", LONG_PATTERN[:7], sample_rate=44100),
        lambda d: mf.make_audio_file(d / "c.m4a", "aac", "ipod", seconds=12),
    ],
    ids=["wav", "wav-44k", "aac"],
)
def test_a_seeked_span_matches_the_same_span_of_the_whole_decode(tmp_path, make):
    path = make(tmp_path)
    whole = decode_audio(path)
    for start, end in [(0.0, 1.5), (2.0, 3.0), (5.25, 9.0), (10.0, 11.0)]:
        span = decode_audio_span(path, start, end)
        np.testing.assert_array_equal(span, whole[round(start * RATE) : round(end * RATE)])
    assert decode_audio_span(path, 500.0, 501.0).size == 0  # past the end: nothing, not an error


def test_a_span_of_a_file_without_audio_is_none(tmp_path):
    video = mf.make_video(tmp_path / "mute.mp4", seconds=1, with_audio=False)
    assert decode_audio_span(video, 0.0, 1.0) is None
    assert decode_audio(video) is None
