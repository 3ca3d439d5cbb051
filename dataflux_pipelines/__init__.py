"""DataFlux pipelines: pure media functions, store contracts and the Dagster assets that wire them."""

__version__ = "0.1.0"
