"""One entry point per worker call: sniff and probe a file, or analyse it with its modality's analyser.

Each modality (image, audio, document, video) implements the `Analyser` protocol in its own module and
is registered once in `ANALYSERS`; `analyze_file` looks the probe's media type up there (no if-chain).
A new modality is a new module with an `analyze_*` function and one line in that table. Entries name
their module, imported on first use: the decode worker of an image never loads video's torch.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.types import AnalysisOptions, MediaAnalysis, Probe
from dataflux_pipelines.records import MediaType

__all__ = ["ANALYSERS", "Analyser", "AnalysisOptions", "analyze_file", "sniff_and_probe", "warm_up"]

log = logging.getLogger(__name__)


class Analyser(Protocol):
    """Segments and features of one file of a modality, from its path, probe and analysis options."""

    def __call__(self, path: str, probe: Probe, options: AnalysisOptions) -> MediaAnalysis: ...


ANALYSERS: dict[str, str] = {
    MediaType.IMAGE: "dataflux_pipelines.media.image:analyze_image",
    MediaType.AUDIO: "dataflux_pipelines.media.audio:analyze_audio",
    MediaType.DOCUMENT: "dataflux_pipelines.media.documents:analyze_document",
    MediaType.VIDEO: "dataflux_pipelines.media.video:analyze_video_with_soundtrack",
}


def analyser_for(media_type: str) -> Analyser:
    entry = ANALYSERS.get(media_type)
    if entry is None:
        raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"no analysis for media type {media_type!r}")
    module, name = entry.split(":")
    return cast(Analyser, getattr(importlib.import_module(module), name))


def sniff_and_probe(path: str) -> Probe:
    """The media type from the bytes plus the technical probe: the `media_file` asset's worker call."""
    return probe_media(Path(path))


def analyze_file(path: str, probe: Probe, options: AnalysisOptions) -> MediaAnalysis:
    """Segments and features of one file, by the media type its probe found, at most `max_segments`."""
    analysis = analyser_for(probe.media_type)(path, probe, options)
    if len(analysis.segments) > options.max_segments:
        analysis.summary["truncated"] = {
            **analysis.summary.get("truncated", {}),
            "segments": len(analysis.segments),
            "kept_segments": options.max_segments,
        }
        analysis.segments = analysis.segments[: options.max_segments]
    return analysis


def warm_up(media_types: Sequence[str], options: AnalysisOptions) -> None:
    """Load, on a thread of this (decode worker) process, what the first file of these types loads.

    Returns at once; the worker goes on taking calls. A first video otherwise spent ~3 s of its
    analysis importing torch and loading TransNetV2 (measured: 3.3 s first call, 0.3 s the next, for
    the same 20-s video); images, audio and documents have no such cost (0.04-0.07 s both times).
    A file analysed meanwhile waits on the same import and model locks (`load_transnet` loads once per
    process), so nothing loads twice. Failures are left for the file's own call to report."""

    def load() -> None:
        for media_type in dict.fromkeys(media_types):
            try:
                analyser_for(media_type)
                if media_type == MediaType.VIDEO.value and options.shot_detector != "classical":
                    from dataflux_pipelines.media.shot_detector import _load_model

                    _load_model(getattr(options, "device", "cpu") or "cpu")  # as analyze_video does
            except Exception as exc:
                log.debug("warm-up of %s analysis failed: %s", media_type, exc)

    threading.Thread(target=load, name="dataflux-analysis-warm-up", daemon=True).start()
