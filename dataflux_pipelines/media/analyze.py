"""One entry point per worker call: sniff and probe a file, or analyse it with its modality's analyser.

Each modality (image, audio, document, video) implements the `Analyser` protocol in its own module and
is registered once in `ANALYSERS`; `analyze_file` looks the probe's media type up there (no if-chain).
A new modality is a new module with an `analyze_*` function and one line in that table. Entries name
their module, imported on first use: the decode worker of an image never loads video's torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, cast

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.types import AnalysisOptions, MediaAnalysis, Probe
from dataflux_pipelines.records import MediaType

__all__ = ["ANALYSERS", "Analyser", "AnalysisOptions", "analyze_file", "sniff_and_probe"]


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
