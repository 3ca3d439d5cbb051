"""One Dagster partition per media file, keyed by the content-derived asset id."""

import dagster as dg

MEDIA_PARTITIONS = "media_files"

media_files = dg.DynamicPartitionsDefinition(name=MEDIA_PARTITIONS)

# Tags of a run that carries a range of partitions (many files in one run).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
