"""The `dataflux` command: one group, each command group registered from its own module."""

from __future__ import annotations

import logging

import click

from dataflux_api.cli import backup as backup_cli
from dataflux_api.cli import config, demo, pipeline, serve
from dataflux_api.cli import mcp as mcp_cli
from dataflux_api.cli import media as media_cli
from dataflux_api.cli.common import end_process
from dataflux_pipelines import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dataflux")
@click.option("-v", "--verbose", count=True, help="Log at INFO level (DEBUG with -vv).")
def cli(verbose: int) -> None:
    """DataFlux: a self-hosted, AI-native database for media."""
    level = logging.WARNING if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


pipeline.register(cli)
demo.register(cli)
config.register(cli)
backup_cli.register(cli)
serve.register(cli)
mcp_cli.register(cli)
media_cli.register(cli)


def main() -> None:
    try:
        cli()
    except SystemExit as exc:
        end_process(exc.code)  # a command that asked for it skips the interpreter's teardown
        raise


if __name__ == "__main__":
    main()
