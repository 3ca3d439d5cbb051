"""`dataflux shots VIDEO`: shots and transitions of one video file."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table


def _timecode(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:06.3f}"


@click.command("shots")
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the detection as JSON instead of tables.")
@click.option(
    "--device", default="cpu", show_default=True, help='Torch device for the analysis, e.g. "cpu" or "cuda".'
)
@click.option(
    "--detector",
    type=click.Choice(["fused", "learned", "classical"]),
    default="fused",
    show_default=True,
    help="TransNetV2 fused with the classical detector, TransNetV2 alone, or the classical detector alone.",
)
def shots(video: Path, as_json: bool, device: str, detector: str) -> None:
    """Detect the shots and transitions (cuts, dissolves, fades) of VIDEO."""
    from dataflux_pipelines.errors import MediaError
    from dataflux_pipelines.media.shot_detector import detect_video

    try:
        detection = detect_video(video, detector=detector, device=device)
    except MediaError as exc:
        raise click.ClickException(str(exc)) from exc
    if detection.detector != detector:
        # Said on stderr so that --json output stays the same shape.
        click.echo(
            f"warning: the {detector} detector is unavailable ({detection.fallback_reason}); "
            "used the classical detector",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(detection.to_json_dict(), indent=2))
        return
    console = Console()
    table = Table(
        title=f"{video.name}: {len(detection.shots)} shot(s), {detection.frames} frames at {detection.fps:g} fps"
    )
    for column in ("#", "start frame", "end frame", "start", "end", "duration (s)"):
        table.add_column(column, justify="right")
    for i, shot in enumerate(detection.shots):
        table.add_row(
            str(i),
            str(shot.start_frame),
            str(shot.end_frame),
            _timecode(shot.start),
            _timecode(shot.end),
            f"{shot.end - shot.start:.2f}",
        )
    console.print(table)
    transitions = Table(title=f"{len(detection.transitions)} transition(s)")
    for column in ("type", "start frame", "end frame", "at", "confidence"):
        transitions.add_column(column, justify="right")
    for t in detection.transitions:
        transitions.add_row(
            t.type,
            str(t.start_frame),
            str(t.end_frame),
            _timecode(t.start_frame / detection.fps),
            f"{t.confidence:.2f}",
        )
    console.print(transitions)


def register(group: click.Group) -> None:
    """Add `shots` to the `dataflux` command group."""
    group.add_command(shots)
