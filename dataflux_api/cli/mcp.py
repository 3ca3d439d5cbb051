"""`dataflux mcp`: the MCP server over stdio (for desktop clients) or streamable HTTP."""

from __future__ import annotations

import dataclasses

import click

from dataflux_api.cli.common import load_settings, serve_http
from dataflux_pipelines.settings import SettingsError


@click.command()
@click.option("--http", "use_http", is_flag=True, help="Serve streamable HTTP at /mcp instead of stdio.")
@click.option("--host", help="HTTP bind address (default DATAFLUX_MCP_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="HTTP port (default DATAFLUX_MCP_PORT or 8004).")
@click.option(
    "--allow-origin",
    "allowed_origins",
    multiple=True,
    help="A browser Origin to accept besides loopback ones (repeatable), e.g. https://app.example.com.",
)
def mcp(use_http: bool, host: str | None, port: int | None, allowed_origins: tuple[str, ...]) -> None:
    """Serve DataFlux to AI agents over MCP (stdio by default; logs go to stderr)."""
    from dataflux_api.mcp_server import build_server, http_app
    from dataflux_api.service import DataFlux

    settings = load_settings()
    settings = dataclasses.replace(
        settings, mcp_host=host or settings.mcp_host, mcp_port=port or settings.mcp_port
    )
    service = DataFlux(settings)
    server = build_server(service=service)
    if not use_http:
        # stdout carries the protocol: nothing else may write there (the SDK diverts fd 1 while serving).
        server.run("stdio")
        return
    try:
        app = http_app(server, settings, settings.mcp_host, allowed_origins=allowed_origins, service=service)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    auth = "bearer token required" if settings.jwt_secret else "no token (loopback only, no secret set)"
    click.echo(f"MCP on http://{settings.mcp_host}:{settings.mcp_port}/mcp ({auth})", err=True)
    serve_http(app, settings, settings.mcp_host, settings.mcp_port, log_level="warning")


def register(group: click.Group) -> None:
    group.add_command(mcp)
