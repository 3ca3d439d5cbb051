"""One Dagster partition per media file, keyed by the content-derived asset id."""

import dagster as dg

MEDIA_PARTITIONS = "media_files"

media_files = dg.DynamicPartitionsDefinition(name=MEDIA_PARTITIONS)
