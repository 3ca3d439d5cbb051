"""Transcripts and on-screen text for a batch of analysed files, with the models loaded once.

Framework-free: the `segments` stage hands over each file's analysis (which says what to transcribe and
which pictures to read) and gets `transcript` and `text` segment drafts added to it, windows and
pictures batched across the files of the run. When a model package is missing, the reason is logged as
a warning and stored in the asset's summary (`transcripts` / `screen_text`), and the files go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.types import MediaAnalysis, SegmentDraft
from dataflux_pipelines.records import MediaType, SegmentType

log = logging.getLogger(__name__)

TEXT_STAGE_VERSION = 1
OCR_CHUNK = 16  # pictures decoded at a time: memory is bounded by this many frames, not by the run


@dataclass
class TextInput:
    """One analysed file: where its bytes are (for decoding transcript windows) and its analysis."""

    asset_id: str
    path: Path
    analysis: MediaAnalysis


def _next_sequence(analysis: MediaAnalysis, segment_type: str) -> int:
    used = [d.sequence_number for d in analysis.segments if d.segment_type == segment_type]
    return max(used) + 1 if used else 0


def read_text(
    items: list[TextInput],
    registry: Any,
    *,
    warn: Callable[[str], None] | None = None,
    max_segments: int | None = None,
) -> dict[str, MediaError]:
    """Add transcript and text segments to each analysis (a file keeps at most `max_segments` in all,
    the rest dropped and the asset marked truncated, as analysis does); returns the files that must
    fail (a scanned PDF in which OCR found no text has nothing to be found by)."""
    say = warn or (lambda message: None)
    failures: dict[str, MediaError] = {}
    for item in items:
        # Marks the file as read by this stage (`stale_text_sources` tells it from older rows).
        item.analysis.summary["text_stage"] = TEXT_STAGE_VERSION
    if items:
        _transcripts(items, registry, say)
        _screen_text(items, registry, say)
    for item in items:
        analysis = item.analysis
        if max_segments is not None and len(analysis.segments) > max_segments:
            analysis.summary["truncated"] = {
                **analysis.summary.get("truncated", {}),
                "segments": len(analysis.segments),
                "kept_segments": max_segments,
            }
            analysis.segments = analysis.segments[:max_segments]
        if analysis.media_type == MediaType.DOCUMENT and not analysis.segments:
            status = analysis.summary.get("screen_text", {})
            why = status.get("reason") or "OCR found no text in the scanned pages"
            failures[item.asset_id] = MediaError(
                Reason.NO_TEXT, f"the PDF has no text layer and its scans could not be read: {why}"
            )
    return failures


def _transcripts(items: list[TextInput], registry: Any, say: Callable[[str], None]) -> None:
    from dataflux_pipelines.media.transcripts import FileWindows, transcribe_files

    wanted = [i for i in items if i.analysis.transcript_windows]
    if not wanted:
        return
    whisper = registry.whisper
    if whisper is None:
        reason = registry.reason("whisper") or "no speech model"
        if "speech" in getattr(registry, "profiles", {}):
            return  # a transformers Whisper folder is configured: the pipeline's older path transcribes
        _unavailable(
            wanted, "transcripts", "transcripts are off", reason, "whisper" in registry.profiles, say
        )
        return
    vad = registry.vad
    started = time.perf_counter()
    errors: dict[str, str] = {}
    results = transcribe_files(
        [FileWindows(i.asset_id, i.path, i.analysis.transcript_windows) for i in wanted],
        whisper,
        vad,
        batch_size=whisper.batch_size,
        on_error=lambda key, exc: errors.__setitem__(key, str(exc)),
    )
    elapsed = time.perf_counter() - started
    total = sum(b - a for i in wanted for a, b in i.analysis.transcript_windows) or 1.0
    for item in wanted:
        segments = results.get(item.asset_id, [])
        first = _next_sequence(item.analysis, SegmentType.TRANSCRIPT)
        for k, seg in enumerate(segments):
            item.analysis.segments.append(
                SegmentDraft(
                    segment_type=SegmentType.TRANSCRIPT,
                    sequence_number=first + k,
                    start_time=seg.start,
                    end_time=seg.end,
                    confidence=seg.confidence,
                    transcript=seg.text,
                    language=seg.language,
                    words=seg.words,
                    source_model=whisper.version,
                    audio_features={"voiced_share": seg.voiced},
                )
            )
        seconds = sum(b - a for a, b in item.analysis.transcript_windows)
        item.analysis.summary["transcripts"] = {
            "status": "failed" if item.asset_id in errors else "ok",
            "reason": errors.get(item.asset_id),
            "model": whisper.version,
            "vad": vad.version if vad is not None else None,
            "device": whisper.device,
            "segments": len(segments),
            "windows": len(item.analysis.transcript_windows),
            "audio_seconds": round(seconds, 3),
            "seconds": round(elapsed * seconds / total, 3),  # this file's share of the batched time
            "language": segments[0].language if segments else None,
        }


def _unavailable(
    items: list[TextInput], key: str, what: str, reason: str, wanted: bool, say: Callable[[str], None]
) -> None:
    """Record why a file has no transcripts / text; a model that should have loaded is a warning,
    a switch turned off in the settings only a note."""
    message = f"{what} for {len(items)} file(s): {reason}"
    if wanted:
        log.warning(message)
        say(message)
    else:
        log.info(message)
    for item in items:
        item.analysis.summary[key] = {"status": "unavailable" if wanted else "off", "reason": reason}


def _screen_text(items: list[TextInput], registry: Any, say: Callable[[str], None]) -> None:
    from dataflux_pipelines.media.screen_text import decode_picture, text_records

    wanted = [i for i in items if i.analysis.text_frames]
    if not wanted:
        return
    ocr = registry.ocr
    if ocr is None:
        reason = registry.reason("ocr") or "no OCR model"
        _unavailable(wanted, "screen_text", "on-screen text is off", reason, "ocr" in registry.profiles, say)
        for item in wanted:
            item.analysis.text_frames = []
        return
    for item in wanted:
        frames = item.analysis.text_frames
        started = time.perf_counter()
        recognised = []
        for k in range(0, len(frames), OCR_CHUNK):
            pictures = [decode_picture(f.jpeg) for f in frames[k : k + OCR_CHUNK]]
            recognised.extend(ocr.recognise(pictures))
        records = text_records(frames, recognised)
        first = _next_sequence(item.analysis, SegmentType.TEXT)
        for k, rec in enumerate(records):
            item.analysis.segments.append(
                SegmentDraft(
                    segment_type=SegmentType.TEXT,
                    sequence_number=first + k,
                    start_time=rec.start_time,
                    end_time=rec.end_time,
                    start_frame=rec.frame,
                    page=rec.page,
                    confidence=rec.confidence,
                    text=rec.text,
                    words=rec.lines,
                    source_model=ocr.version,
                    technical_features={"pictures": rec.pictures, "shot": rec.shot},
                )
            )
        skipped = sum(1 for r in recognised if r.checked_only)
        item.analysis.summary["screen_text"] = {
            "status": "ok",
            "model": ocr.version,
            "device": ocr.device,
            "pictures": len(frames),
            "skipped_by_presence_check": skipped,
            "segments": len(records),
            "seconds": round(time.perf_counter() - started, 3),
        }
        item.analysis.text_frames = []  # the JPEGs are not needed past this point


# Which text-reading models each media type's rows depend on (video: soundtrack and frames).
_READERS = {"audio": ("whisper",), "video": ("whisper", "ocr"), "image": ("ocr",), "document": ("ocr",)}


def stale_text_sources(db: Any, registry: Any) -> list[str]:
    """Completed assets whose transcripts or on-screen text came from another Whisper / OCR model than the
    one loaded now (or from none, because it was unavailable then), and audio, video and images
    processed before this stage existed: their `segments` stage must rerun.

    The asset's `models` records the versions (`None` when the model could not run); a file with
    nothing to read (no sound, no scanned page) records no slot and is never stale for that reader."""
    import json

    from dataflux_pipelines import layout
    from dataflux_pipelines.catalog import table_names

    if layout.ASSETS_TABLE not in table_names(db):
        return []
    current = {}
    for name in ("whisper", "ocr"):
        model = getattr(registry, name)
        if model is not None:
            current[name] = model.version
    if not current:
        return []
    rows = (
        db.open_table(layout.ASSETS_TABLE)
        .search()
        .where("status = 'completed'")
        .select(["id", "media_type", "models", "summary"])
        .limit(None)
        .to_list()
    )
    stale = []
    for row in rows:
        models = json.loads(row["models"]) if row.get("models") else {}
        summary = json.loads(row["summary"]) if row.get("summary") else {}
        readers = [n for n in _READERS.get(row.get("media_type") or "", ()) if n in current]
        if not summary.get("text_stage"):
            # Processed before files were read for text: audio, video and images have never been read.
            if readers and row.get("media_type") != "document":
                stale.append(row["id"])
            continue
        # Read before: stale where a reader recorded another version, or None (it could not run then).
        if any(name in models and models[name] != current[name] for name in readers):
            stale.append(row["id"])
    return sorted(stale)
