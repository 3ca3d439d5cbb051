#!/usr/bin/env bash
# Prepare the Dagster instance before the webserver and daemon start (compose: the dagster-init service).
# Idempotent: safe on every start and after an upgrade. Equivalent CLI, three Python start-ups instead of one:
#   dagster instance migrate
#   dagster instance concurrency set kuzu_writer 1
#   dagster instance concurrency set duckdb_writer 1
set -euo pipefail

: "${DAGSTER_HOME:?set DAGSTER_HOME to the folder that holds dagster.yaml}"

exec python - <<'PY'
import dagster as dg

# Kuzu and DuckDB accept one read-write process, so their writer pools get exactly one slot.
# Per-pool limits live in the instance storage; dagster.yaml can only set the default (REFERENCE 1.4).
SINGLE_WRITER_POOLS = ("kuzu_writer", "duckdb_writer")

with dg.DagsterInstance.get() as instance:
    # Creates the schema on an empty database and applies migrations after a Dagster upgrade.
    instance.upgrade(print)
    print(instance.schema_str())
    for pool in SINGLE_WRITER_POOLS:
        instance.event_log_storage.set_concurrency_slots(pool, 1)
        print(f"Set concurrency limit for {pool} to 1.")
PY
