"""One Dagster partition per media file, keyed by the content-derived asset id."""

import dagster as dg

media_files = dg.DynamicPartitionsDefinition(name="media_files")
