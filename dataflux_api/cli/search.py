"""`dataflux search`: the same request and response fields as REST and MCP, as a table or as JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console

from dataflux_pipelines.settings import Settings


@click.command("search")
@click.argument("query")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Relevance cut-off in [0, 1]; the default floor when absent, 0 returns weak hits too.",
)
@click.option(
    "--media-type", "media_types", multiple=True, help="Restrict to video, image, audio or document."
)
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON (the REST body).")
def search(
    query: str, limit: int, min_score: float | None, media_types: tuple[str, ...], as_json: bool
) -> None:
    """Search the library; scores are calibrated relevance with a per-leg explanation."""
    import msgspec

    from dataflux_api.cli.demo import print_search
    from dataflux_api.query.models import SearchRequest
    from dataflux_api.service import DataFlux

    service = DataFlux(Settings.from_env())
    response = service.search(
        SearchRequest(query=query, limit=limit, min_score=min_score, media_types=list(media_types))
    )
    if as_json:
        click.echo(msgspec.json.encode(response).decode())
        return
    console = Console()
    print_search(console, query, response)
    for result in json.loads(msgspec.json.encode(response))["results"][:limit]:
        console.print(
            f"[bold]{result['metadata'].get('filename')}[/] {result['score']:.4f} {result['explanation']}"
        )


def register(group: click.Group) -> None:
    group.add_command(search)
