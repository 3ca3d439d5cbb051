"""Dagster resources: settings enter once, from the environment, when a run starts."""

from __future__ import annotations

import dagster as dg

from dataflux_pipelines.settings import Settings


class DataFluxResource(dg.ConfigurableResource):
    """DataFlux's settings for a run; `home` overrides DATAFLUX_HOME (tests, one-off runs)."""

    home: str | None = None

    def settings(self) -> Settings:
        settings = Settings.from_env()
        if self.home:
            from pathlib import Path

            settings = settings.with_home(Path(self.home))
        return settings
