"""Kuzu DDL of the DataFlux media graph, shared by the graph writer and its readers.

Every node table keys on `id` (a concept's id is its name), so one parameterised
`WHERE x.id = $id` finds any entity whatever its label.
"""

from __future__ import annotations

NODE_TYPES = ("Asset", "Segment", "Collection", "Concept")
REL_TYPES = ("HAS_SEGMENT", "NEXT", "IN_COLLECTION", "SIMILAR_TO", "DUPLICATE_OF", "TAGGED", "OVERLAPS")

# (from, to) node labels of every relation. Queries name both labels: in Kuzu 0.11.3 an unlabelled
# node pattern across several relation tables returned nodes of the wrong table.
REL_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "HAS_SEGMENT": (("Asset", "Segment"),),
    "NEXT": (("Segment", "Segment"),),
    "IN_COLLECTION": (("Asset", "Collection"),),
    "SIMILAR_TO": (("Segment", "Segment"), ("Asset", "Asset")),
    "DUPLICATE_OF": (("Segment", "Segment"), ("Asset", "Asset")),
    "TAGGED": (("Segment", "Concept"), ("Asset", "Concept")),
    "OVERLAPS": (("Segment", "Segment"),),
}

# Relations that per-file contributions carry; the rest come from the catalog rows.
CONTRIB_KINDS = ("NEXT", "TAGGED", "SIMILAR_TO", "DUPLICATE_OF", "OVERLAPS")

DDL = (
    "CREATE NODE TABLE Asset(id STRING PRIMARY KEY, filename STRING, media_type STRING, "
    "mime_type STRING, status STRING, duration DOUBLE, collection_id STRING, created_at TIMESTAMP)",
    "CREATE NODE TABLE Segment(id STRING PRIMARY KEY, asset_id STRING, segment_type STRING, "
    "sequence_number INT64, start_time DOUBLE, end_time DOUBLE, page INT64)",
    "CREATE NODE TABLE Collection(id STRING PRIMARY KEY, name STRING, auto_generated BOOLEAN)",
    "CREATE NODE TABLE Concept(id STRING PRIMARY KEY)",
    "CREATE REL TABLE HAS_SEGMENT(FROM Asset TO Segment)",
    "CREATE REL TABLE NEXT(FROM Segment TO Segment, gap DOUBLE)",
    "CREATE REL TABLE IN_COLLECTION(FROM Asset TO Collection)",
    # Segment pairs carry the measured score; asset pairs aggregate them (best score, modality).
    "CREATE REL TABLE SIMILAR_TO(FROM Segment TO Segment, FROM Asset TO Asset, score DOUBLE, modality STRING)",
    # Asset pairs also say how many segments they share and which (as "src_segment:dst_segment").
    # Segment pairs: `spans` = [from start, from end, to start, to end], the seconds each shares with the other.
    "CREATE REL TABLE DUPLICATE_OF(FROM Segment TO Segment, FROM Asset TO Asset, score DOUBLE, "
    "shared_segments INT64, segment_pairs STRING[], spans DOUBLE[])",
    # A transcript or on-screen text segment and the shot (or audio passage) it overlaps in time;
    # `seconds` is the length of the overlap.
    "CREATE REL TABLE OVERLAPS(FROM Segment TO Segment, seconds DOUBLE)",
    "CREATE REL TABLE TAGGED(FROM Segment TO Concept, FROM Asset TO Concept, confidence DOUBLE, segments INT64)",
)

# What a snapshot records about its own inputs, so the next publication can copy it and apply only
# what changed (`graph.build`). Readers never query these tables.
# - `_Manifest`: per asset in the graph, the listing (etag, LastModified) of the contribution it was built
#   from; and one row `FORMAT_ROW` whose etag is the build's format (GRAPH_FORMAT; another format means a
#   full rebuild). The format has no table of its own: every Kuzu node table costs at least ~1 MB of
#   snapshot (its primary-key index; kuzu 0.11.3, one row in a new database: 1.08 MB): a 100-photo
#   snapshot 15.5 -> 14.4 MB.
# - `_CANDIDATE`: every SIMILAR_TO / DUPLICATE_OF edge of the contributions as written (from a segment of
#   the contributing asset to any segment id, in the graph or not), so an asset that is added, reprocessed
#   or re-ingested gets the edges other assets' contributions point at it without reading those again.
#   `_Target` holds the segment ids they point at.
GRAPH_FORMAT = "2"  # bump with any change to DDL or to how build.py derives edges
FORMAT_ROW = "~format"  # the `_Manifest` id of the format row (asset ids are UUIDs)
BOOKKEEPING_TABLES = ("_Manifest", "_Target", "_CANDIDATE")
BOOKKEEPING_DDL = (
    "CREATE NODE TABLE _Manifest(id STRING PRIMARY KEY, etag STRING, modified STRING)",
    "CREATE NODE TABLE _Target(id STRING PRIMARY KEY)",
    "CREATE REL TABLE _CANDIDATE(FROM Segment TO _Target, kind STRING, score DOUBLE, modality STRING, "
    "spans DOUBLE[])",
)

# Columns of the per-file contribution Parquet files (`graph/contrib/{asset_id}.parquet`).
CONTRIB_COLUMNS = ("kind", "src", "dst", "score", "modality", "spans")
