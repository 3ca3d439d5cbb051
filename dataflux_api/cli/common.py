"""What every `dataflux` command shares: the settings (with a readable error) and the console."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from dataflux_pipelines.settings import Settings, SettingsError

if TYPE_CHECKING:
    import uvicorn


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def console() -> Console:
    return Console(stderr=False, highlight=False)


def serve_http(app: Callable[..., Any], settings: Settings, host: str, port: int, log_level: str) -> None:
    """Serve an ASGI app the way `dataflux api` and `dataflux mcp --http` do (blocks until stopped)."""
    import uvicorn

    server = uvicorn.Server(http_server_config(app, settings, host, port, log_level))
    server.run()
    if not server.started:  # the port was taken or start-up failed: uvicorn logged why
        raise SystemExit(3)


def http_server_config(
    app: Callable[..., Any], settings: Settings, host: str, port: int, log_level: str
) -> uvicorn.Config:
    """The uvicorn configuration both servers share.

    uvicorn closes a connection that has been idle for 5 s by default. A pooled client whose next request
    crosses that close gets "server disconnected without sending a response" (it happened once in 415,528
    searches by 20 clients on a loaded machine). The idle time is a setting, longer than proxies' and client
    pools' own idle timeouts, so the client is the side that lets a connection go.
    """
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_keep_alive=settings.http_keep_alive_s
    )
