"""`dataflux api` (serve the REST API) and `dataflux token create` (mint a bearer token)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import click

from dataflux_api.cli.common import load_settings as _settings
from dataflux_api.cli.common import serve_http
from dataflux_pipelines.settings import SettingsError


@click.command()
@click.option("--host", help="Bind address (default DATAFLUX_API_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default DATAFLUX_API_PORT or 8000).")
@click.option("--warm/--no-warm", default=True, show_default=True, help="Load the models before serving.")
def api(host: str | None, port: int | None, warm: bool) -> None:
    """Serve the REST API (OpenAPI docs at /schema)."""
    from dataflux_api.app import create_app
    from dataflux_api.service import DataFlux

    settings = _settings()
    settings = dataclasses.replace(
        settings, api_host=host or settings.api_host, api_port=port or settings.api_port
    )
    service = DataFlux(settings)
    try:
        app = create_app(settings, service=service)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if warm:
        # Loading up front puts a degraded model profile in the log at start, not on the first search.
        status = service.registry.status(load=True)
        for reason in status["degraded"]:
            click.echo(f"warning: {reason}", err=True)
    serve_http(app, settings, settings.api_host, settings.api_port, log_level="info")


@click.group()
def token() -> None:
    """Bearer tokens for the REST API and MCP."""


@token.command("create")
@click.option("--subject", required=True, help="Who the token is for (the `sub` claim).")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    required=True,
    type=click.Choice(["assets:read", "assets:write", "search", "admin"]),
    help="Repeat for several permissions.",
)
@click.option("--ttl", default="30d", show_default=True, help="Lifetime: seconds or 30m, 12h, 7d.")
def create(subject: str, permissions: tuple[str, ...], ttl: str) -> None:
    """Print a token signed with DATAFLUX_JWT_SECRET."""
    from dataflux_api.auth import create_token, parse_ttl

    settings = _settings()
    if not settings.jwt_secret:
        raise click.ClickException("DATAFLUX_JWT_SECRET is not set; the API runs open and needs no token")
    try:
        seconds = parse_ttl(ttl)
        value = create_token(settings.jwt_secret, subject, permissions, seconds)
    except (ValueError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    click.echo(value)
    click.echo(
        f"subject {subject}, permissions {', '.join(sorted(set(permissions)))}, "
        f"expires {expires:%Y-%m-%d %H:%M} UTC",
        err=True,
    )


def register(group: click.Group) -> None:
    group.add_command(api)
    group.add_command(token)
