"""Dagster resources: settings enter once, from the environment, when a run starts."""

from __future__ import annotations

import os
import shutil

import dagster as dg

from dataflux_pipelines.settings import REPO_ROOT, Settings


class DataFluxResource(dg.ConfigurableResource):
    """DataFlux's settings for a run; `home` overrides DATAFLUX_HOME (tests, one-off runs)."""

    home: str | None = None

    def settings(self) -> Settings:
        settings = Settings.from_env()
        if self.home:
            from pathlib import Path

            settings = settings.with_home(Path(self.home))
        return settings


def ensure_dagster_home(settings: Settings) -> None:
    """Point Dagster at DAGSTER_HOME, giving a fresh folder the embedded dagster.yaml."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
