"""DataFlux API: the query service, REST, MCP, the web UI and the `dataflux` command."""

# First: the package defers what lancedb imports and DataFlux never calls (see `deferred_imports`),
# and modules here import lancedb before any other DataFlux module.
import dataflux_pipelines  # noqa: F401
