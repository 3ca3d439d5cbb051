"""Everything Dagster: partitions, resources, assets, jobs, sensors, schedules and the embedded runner.

Only this package imports `dagster`; it wires the framework-free core (`pipeline`, `landing`,
`embeddings`, `graph`, `analytics`) to Dagster's events. `definitions.py` only assembles.
"""
