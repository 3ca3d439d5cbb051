"""`dataflux demo` (sample media in, pipeline, searches out) and `dataflux doctor`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dataflux_api.cli.common import load_settings as _settings
from dataflux_pipelines.settings import Settings

DEMO_QUERIES = (
    "documents about ocean tides and the harbour",
    '"sourdough starter"',
    # Found by what the files say and show (transcripts and on-screen text), not by their context:
    "when does the boat to the island depart",
    "installing solar panels on a roof",
    "how heavy is the folding bike",
)


def _fmt_span(segment: dict[str, Any]) -> str:
    if segment.get("page") is not None:
        return f"page {segment['page']}"
    start, end = segment.get("start_time"), segment.get("end_time")
    if start is not None and end is not None:
        return f"{start:6.2f}–{end:6.2f} s"
    return segment.get("segment_type") or ""


def _fmt_segment(segment: dict[str, Any]) -> str:
    """The segment's type and its span: "transcript 0.80–6.12 s", "text page 1"."""
    span, kind = _fmt_span(segment), segment.get("segment_type") or ""
    return span if span.startswith(kind) or kind == "page" else f"{kind} {span}".strip()


def _fmt_matches(matches: list[dict[str, Any]]) -> str:
    """Matched transcript words with their start times, or matched on-screen lines."""
    out = []
    for m in matches[:6]:
        if "word" in m and m.get("start") is not None:
            out.append(f"{m['word']}@{float(m['start']):.1f}s")
        elif m.get("text"):
            out.append(str(m["text"]))
    return ", ".join(out)


def print_search(console: Console, query: str, response: Any) -> None:
    data = response if isinstance(response, dict) else _to_dict(response)
    table = Table(title=f"search: {query}  ({data.get('total', 0)} result(s), {data.get('took_ms', 0)} ms)")
    for column in ("asset", "type", "segment", "score", "highlight / matched words", "why"):
        table.add_column(column, overflow="fold")
    for result in data.get("results", [])[:5]:
        meta = result.get("metadata") or {}
        segments = result.get("segments") or [{}]
        highlight = (result.get("highlights") or [""])[0]
        words = _fmt_matches(segments[0].get("matches") or [])
        if words:
            highlight = f"{highlight} [{words}]"
        table.add_row(
            meta.get("filename") or result.get("id", ""),
            result.get("type", ""),
            _fmt_segment(segments[0]),
            f"{result.get('score', 0):.4f}",
            (highlight[:120] + "…") if len(highlight) > 120 else highlight,
            ", ".join(f"{k} {v}" for k, v in (result.get("explanation") or {}).get("legs", {}).items()),
        )
    console.print(table)


def _to_dict(obj: Any) -> dict[str, Any]:
    import msgspec

    return json.loads(msgspec.json.encode(obj))


def run_searches(settings: Settings, console: Console) -> None:
    from dataflux_api.query.models import SearchRequest
    from dataflux_api.service import DataFlux

    service = DataFlux(settings)
    for query in DEMO_QUERIES:
        print_search(console, query, service.search(SearchRequest(query=query, limit=5)))


@click.command()
@click.option("--no-search", is_flag=True, help="Stop after processing (no search queries).")
def demo(no_search: bool) -> None:
    """Generate the sample media, ingest and process it, and print a summary and searches."""
    from dataflux_api.cli.pipeline import print_status, run_process
    from dataflux_pipelines.catalog import Catalog
    from dataflux_pipelines.landing import ingest_paths
    from dataflux_pipelines.objectstore import open_object_store
    from dataflux_pipelines.samples import SAMPLE_CONTEXT, write_samples

    settings = _settings()
    console = Console(highlight=False)
    samples = settings.home / "samples"
    console.rule("[bold]1. sample media")
    files = write_samples(samples)
    console.print(f"{len(files)} files in {samples}")
    from dataflux_pipelines.text_samples import espeak_path

    if espeak_path() is None:
        console.print(
            "[yellow]espeak-ng is not installed: the spoken samples (ferry_briefing.wav, bicycle_launch.mp4) "
            "were not generated; install it (apt-get install espeak-ng) to try transcripts[/yellow]"
        )
    console.rule("[bold]2. ingest")
    store, catalog = open_object_store(settings), Catalog(settings)
    for file in files:
        for path, receipt in ingest_paths(store, catalog, [file], context=SAMPLE_CONTEXT.get(file.name)):
            state = f"already known ({receipt.status})" if receipt.duplicate_of else "landed"
            console.print(f"{path.name:28} {receipt.asset_id}  {state}")
    console.rule("[bold]3. process (Dagster, in this process)")
    report = run_process(settings)
    console.print(
        f"{report.files} file(s), {report.runs} run(s), {report.completed} completed, {report.failed} failed, "
        f"{report.seconds:.1f} s"
    )
    console.rule("[bold]4. catalog")
    print_status(settings, console)
    if not no_search:
        console.rule("[bold]5. search")
        run_searches(settings, console)
    console.rule("[bold]next")
    console.print("`make up` starts the Dagster UI, the API and the MCP server:")
    from dataflux_api.cli.pipeline import service_commands

    for name, _, url in service_commands(settings):
        console.print(f"  {name:8} {url}")
    if report.failed:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check versions, stores, the Dagster instance, the device and the models; say how to fix what fails."""
    from dataflux_api.doctor import run_checks

    checks = run_checks(_settings())
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        console = Console(highlight=False)
        for check in checks:
            mark = (
                "[green]ok[/]  "
                if check.ok
                else ("[yellow]warn[/]" if check.level == "warning" else "[red]FAIL[/]")
            )
            console.print(f"{mark} {check.name:18} {check.detail}")
            if not check.ok and check.fix:
                console.print(f"     {'':18} fix: {check.fix}")
    if any(not c.ok and c.level == "error" for c in checks):
        sys.exit(1)


@click.command()
@click.argument("query")
@click.option(
    "--type", "media_types", multiple=True, type=click.Choice(["video", "image", "audio", "document"])
)
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Relevance cut-off in [0, 1] (default: the calibrated floor; 0 returns weak hits too).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the search response as JSON.")
@click.option(
    "--local",
    is_flag=True,
    help="Search in this process (loads the models) even when a running API serves this library.",
)
def search(
    query: str, media_types: tuple[str, ...], limit: int, min_score: float | None, as_json: bool, local: bool
) -> None:
    """Hybrid search over everything processed: what it understood, assets and matching segments.

    Asks the running API (DATAFLUX_API_URL, default the local API port) when it serves this library,
    whose models are warm; otherwise searches here, which first loads the models.
    """
    from dataflux_api.cli import remote

    settings = _settings()
    request = {"query": query, "media_types": list(media_types), "limit": limit, "min_score": min_score}
    answer: dict[str, Any] | remote.NoApi = remote.NoApi("--local was given")
    if not local:
        try:
            answer = remote.search(settings, request)
        except remote.ApiError as exc:
            raise click.ClickException(str(exc)) from exc
    if isinstance(answer, remote.NoApi):
        if not local:
            click.echo(f"note: {answer.reason}; searching in this process (loads the models)", err=True)
        answer = _search_here(settings, request)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        print_search(Console(highlight=False), query, answer)


def _search_here(settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    from dataflux_api.errors import DataFluxError
    from dataflux_api.query.models import SearchRequest
    from dataflux_api.service import DataFlux

    try:
        response = DataFlux(settings).search(msgspec.convert(request, SearchRequest))
    except DataFluxError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    return _to_dict(response)


def register(group: click.Group) -> None:
    for command in (demo, doctor, search):
        group.add_command(command)
