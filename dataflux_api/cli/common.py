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


# --- ending the process --------------------------------------------------------------------
_SKIP_TEARDOWN = False


def skip_teardown() -> None:
    """Let this command's process end without the interpreter's teardown (see `end_process`)."""
    global _SKIP_TEARDOWN
    _SKIP_TEARDOWN = True


def end_process(code: int | str | None) -> None:
    """End the `dataflux` process with `code`, after every exit handler, without the teardown.

    After `dataflux process` printed its report, the interpreter took 1.7 s (measured here, load ~5)
    to tear down its modules and free torch, LanceDB and Dagster objects one by one: nothing is written
    then (every store is committed and closed by the command; Kuzu and DuckDB are closed explicitly,
    SQLite's commits are in its WAL). So a command that asked for it (`skip_teardown`) ends like this:
    the exit handlers run as always (logging, weakref finalizers, multiprocessing's), the standard
    streams are flushed, and the process exits with its code. Anything else, or a process with a
    non-daemon thread still running, exits the ordinary way."""
    import atexit
    import os
    import sys
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not _SKIP_TEARDOWN or any(t.is_alive() for t in others):
        raise SystemExit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = 0 if code is None else (1 if isinstance(code, str) else int(code))
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1  # a closed or broken pipe: the output did not all arrive
    os._exit(status)
