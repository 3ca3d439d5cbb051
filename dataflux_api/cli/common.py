"""What every `dataflux` command shares: the settings (with a readable error) and the console."""

from __future__ import annotations

import click
from rich.console import Console

from dataflux_pipelines.settings import Settings, SettingsError


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def console() -> Console:
    return Console(stderr=False, highlight=False)
