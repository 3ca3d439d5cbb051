"""`dataflux ingest | process | status | up | demo | doctor`: the embedded pipeline from a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataflux_api.cli.common import console as _console
from dataflux_api.cli.common import load_settings as _settings
from dataflux_api.cli.common import skip_teardown
from dataflux_pipelines.settings import REPO_ROOT, Settings


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--context", help="Context stored with every file (searchable).")
@click.option("--priority", type=click.IntRange(1, 10), default=5, show_default=True, help="1 = most urgent.")
@click.option("--collection", "collection_id", help="Collection id (UUID) to put the files in.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def ingest(
    paths: tuple[Path, ...], context: str | None, priority: int, collection_id: str | None, as_json: bool
) -> None:
    """Copy files (folders recursively) into the landing area; the sensor or `process` takes it from there."""
    from dataflux_api.errors import DataFluxError
    from dataflux_api.service import DataFlux

    service = DataFlux(_settings())
    console = _console()
    landed = duplicates = refused = 0
    try:
        for result in service.ingest_files(
            paths, context=context, priority=priority, collection_id=collection_id
        ):
            path = result["path"]
            if as_json:
                click.echo(json.dumps(result))
            elif result["refused"]:
                console.print(f"[red]refused[/]   {path}: {result['refused']}: {result['message']}")
            elif result["duplicate_of"]:
                console.print(
                    f"[yellow]duplicate[/] {path} (asset {result['duplicate_of']}, {result['status']})"
                )
            else:
                console.print(f"[green]landed[/]    {path} → asset {result['asset_id']}")
            refused += bool(result["refused"])
            duplicates += bool(result["duplicate_of"])
            landed += not (result["refused"] or result["duplicate_of"])
    except DataFluxError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    if not as_json:
        console.print(
            f"{landed} file(s) landed, {duplicates} duplicate(s), {refused} refused. "
            "Run `dataflux process` or let the sensor pick them up."
        )
    if refused and not landed and not duplicates:
        raise SystemExit(1)


def run_process(settings: Settings, *, stale: bool = False, quiet: bool = False) -> Any:
    """Process the landing area in this process, with a progress bar."""
    from dataflux_pipelines.media.sandbox import close_spares
    from dataflux_pipelines.pipeline import prestart_decoders

    prestart_decoders(settings)  # the decode workers start and warm up while Dagster loads
    try:
        return _run_process(settings, stale=stale, quiet=quiet)
    finally:
        close_spares()


def _run_process(settings: Settings, *, stale: bool, quiet: bool) -> Any:
    import dagster as dg

    from dataflux_pipelines.orchestration.embedded import process_landing
    from dataflux_pipelines.orchestration.resources import ensure_dagster_home

    ensure_dagster_home(settings)
    from dataflux_pipelines.orchestration.definitions import defs

    with dg.DagsterInstance.get() as instance:
        if quiet:
            return process_landing(settings, instance, defs, stale=stale)
        columns = [
            TextColumn("[bold]processing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=_console(), transient=False) as bar:
            task = bar.add_task("files", total=None, detail="")

            def progress(done: int, total: int, counts: dict[str, int]) -> None:
                detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                bar.update(task, completed=done, total=total, detail=detail)

            return process_landing(settings, instance, defs, stale=stale, progress=progress)


@click.command()
@click.option(
    "--stale", is_flag=True, help="Also re-embed files whose models changed since they were processed."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def process(stale: bool, as_json: bool) -> None:
    """Evaluate landing as the sensor does and materialize the pending partitions here."""
    skip_teardown()  # everything is committed and closed when it returns: no teardown at exit
    settings = _settings()
    report = run_process(settings, stale=stale, quiet=as_json)
    data = {
        "runs": report.runs,
        "files": report.files,
        "completed": report.completed,
        "failed": report.failed,
        "duplicates_removed": report.duplicates,
        "shared_runs": report.shared_runs,
        "seconds": round(report.seconds, 2),
        "files_per_second": round(report.files_per_second, 2),
        "timings": report.timings,
        "profile": report.profile,
        "failures": report.failures,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        console = _console()
        if not report.files:
            console.print("Nothing to process: landing is empty and no file is stale.")
        else:
            console.print(
                f"{report.files} file(s) in {report.runs} run(s): {report.completed} completed, "
                f"{report.failed} failed, {report.seconds:.1f} s ({report.files_per_second:.2f} files/s)"
            )
        for failure in report.failures:
            console.print(
                f"[red]failed[/] {failure['filename']} ({failure['id']}): {failure['reason_code']}: {failure['message']}"
            )
    if report.failed:
        sys.exit(1)


def status_rows(settings: Settings) -> list[dict[str, Any]]:
    from dataflux_api.service import DataFlux

    return DataFlux(settings).status_rows()


def print_status(settings: Settings, console: Console) -> None:
    rows = status_rows(settings)
    table = Table(title=f"DataFlux assets ({settings.home})")
    for column in ("filename", "id", "type", "status", "segments", "reason"):
        table.add_column(column)
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["status"]] = totals.get(row["status"], 0) + 1
        reason = f"{row['reason_code']}: {row['reason_message']}" if row["reason_code"] else ""
        colour = {"completed": "green", "failed": "red"}.get(row["status"], "yellow")
        table.add_row(
            row["filename"] or "",
            row["id"],
            row["media_type"] or "",
            f"[{colour}]{row['status']}[/]",
            str(row["segment_count"] or ""),
            reason,
        )
    console.print(table)
    console.print("totals: " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "no assets"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print assets and totals as JSON.")
def status(as_json: bool) -> None:
    """Every asset with its status (and reason when failed), and totals by status."""
    settings = _settings()
    if as_json:
        rows = status_rows(settings)
        totals: dict[str, int] = {}
        for row in rows:
            totals[row["status"]] = totals.get(row["status"], 0) + 1
        keep = (
            "id",
            "filename",
            "media_type",
            "mime_type",
            "status",
            "reason_code",
            "reason_message",
            "segment_count",
        )
        click.echo(
            json.dumps(
                {"assets": [{k: r[k] for k in keep} for r in rows], "totals": totals}, indent=2, default=str
            )
        )
    else:
        print_status(settings, _console())


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    def reset_signals() -> None:
        # Background children inherit SIGINT=SIG_IGN; Dagster would then ignore SIGTERM too (dagster dev started with & from a script).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen(args, env=env, cwd=REPO_ROOT, preexec_fn=reset_signals, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(children: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each child's process group, wait for the whole group (Dagster's code server and
    daemon are grandchildren), then SIGKILL whatever is left."""
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        while _group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(child.pid):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(5)


def service_commands(settings: Settings) -> list[tuple[str, list[str], str]]:
    """The processes `dataflux up` runs: (name, argv, URL)."""
    exe = sys.executable
    host = "127.0.0.1"
    services = [
        (
            "dagster",
            [
                exe,
                "-m",
                "dagster",
                "dev",
                "-w",
                str(REPO_ROOT / "workspace.yaml"),
                "-h",
                host,
                "-p",
                str(settings.dagster_port),
            ],
            f"http://{host}:{settings.dagster_port}",
        )
    ]
    services.append(
        (
            "api",
            [
                exe,
                "-m",
                "dataflux_api.cli.main",
                "api",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
            ],
            f"http://{settings.api_host}:{settings.api_port}/ (REST: /api/v1, docs: /schema)",
        )
    )
    services.append(
        (
            "mcp",
            [
                exe,
                "-m",
                "dataflux_api.cli.main",
                "mcp",
                "--http",
                "--host",
                settings.mcp_host,
                "--port",
                str(settings.mcp_port),
            ],
            f"http://{settings.mcp_host}:{settings.mcp_port}/mcp",
        )
    )
    return services


@click.command()
def up() -> None:
    """Run the Dagster webserver + daemon, the API and the MCP server until Ctrl-C."""
    from dataflux_pipelines.orchestration.resources import ensure_dagster_home

    settings = _settings()
    ensure_dagster_home(settings)
    env = dict(os.environ, DAGSTER_HOME=str(settings.dagster_home), DATAFLUX_HOME=str(settings.home))
    console = _console()
    children = []
    services = service_commands(settings)
    for name, argv, _ in services:
        children.append(_child(argv, env))
        console.print(f"started {name} (pid {children[-1].pid})")
    console.print("\n[bold]DataFlux is up[/] (Ctrl-C stops everything):")
    for name, _, url in services:
        console.print(f"  {name:8} {url}")
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            dead = [
                (s[0], c.returncode) for s, c in zip(services, children, strict=True) if c.poll() is not None
            ]
            if dead:
                console.print(f"[red]{dead[0][0]} exited with code {dead[0][1]}; stopping the rest[/]")
                break
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        _stop(children)
        console.print("stopped.")


def register(group: click.Group) -> None:
    for command in (ingest, process, status, up):
        group.add_command(command)
