"""`dataflux backup DEST` and `dataflux restore SRC`: a point-in-time copy and its restore into empty homes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dataflux_api.cli.common import load_settings as _settings


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--with-objects", is_flag=True, help="Also copy the objects (originals, thumbnails, landing).")
@click.option("--json", "as_json", is_flag=True, help="Print the backup manifest as JSON.")
def backup(dest: Path, with_objects: bool, as_json: bool) -> None:
    """Back up the catalog, Lance tables, graph, analytics, object manifest and Dagster instance into DEST."""
    from dataflux_pipelines.orchestration.backup import BackupError, create_backup

    console = Console(highlight=False, stderr=as_json)
    try:
        manifest = create_backup(
            _settings(), dest, with_objects=with_objects, log=None if as_json else console.print
        )
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(manifest, indent=2, default=str))
        return
    counts = manifest["counts"]
    console.print(
        f"[green]backup written[/] to {dest}: {counts['assets']} asset(s), {counts['segments']} segment(s), "
        f"{counts['runs']} run(s), {counts['objects']} object(s) "
        f"({'copied' if with_objects else 'manifest only'}); {manifest['files']} file(s), "
        f"{_mib(manifest['bytes'])}, {manifest['seconds']:.1f} s"
    )
    console.print("not included: " + "; ".join(manifest["not_included"]))


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the restore report as JSON.")
def restore(src: Path, as_json: bool) -> None:
    """Restore a backup into an empty DATAFLUX_HOME, Lance location and DAGSTER_HOME."""
    from dataflux_pipelines.orchestration.backup import BackupError, restore_backup

    console = Console(highlight=False, stderr=as_json)
    try:
        report: dict[str, Any] = restore_backup(_settings(), src, log=None if as_json else console.print)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    rows = sum(t["rows"] for t in report["tables"].values())
    console.print(
        f"[green]restored[/] the backup of {report['created_at']}: {len(report['tables'])} table(s), "
        f"{rows} row(s), {report['dagster']['runs']} run(s), {report['dagster']['media_partitions']} "
        f"partition(s) in {report['seconds']:.1f} s"
    )
    if report["objects"]["missing"]:
        console.print(
            f"[yellow]{report['objects']['missing']} object(s) are not in the object store[/] (the backup has "
            "their manifest only): copy them back from the original store, or originals and thumbnails "
            "of those assets answer 404"
        )


def register(group: click.Group) -> None:
    for command in (backup, restore):
        group.add_command(command)
