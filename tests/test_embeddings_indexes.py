"""Index maintenance on real Lance tables: FTS, scalar and ANN indexes, tuned recall, readers in other processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from dataflux_pipelines import records
from dataflux_pipelines.embeddings.indexes import (
    SEARCH_PARAMS_TABLE,
    apply_search_params,
    ensure_tables,
    load_search_params,
    maintain_indexes,
    measure_recall,
)
from dataflux_pipelines.identity import segment_id_for

DIM = 64


def low_rank_vectors(n: int, dim: int = DIM, latent: int = 8, seed: int = 0) -> np.ndarray:
    """Vectors with neighbour structure, like real embeddings: an 8-d latent projected to `dim`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, latent)) @ rng.normal(size=(latent, dim)) + 0.05 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def vector_rows(vectors: np.ndarray, asset_id: str, start: int = 0) -> pa.Table:
    n = len(vectors)
    return pa.Table.from_pydict(
        {
            "segment_id": [segment_id_for(asset_id, "image", start + i) for i in range(n)],
            "asset_id": [asset_id] * n,
            "media_type": ["image"] * n,
            "segment_type": ["image"] * n,
            "vector": list(vectors),
            "model": ["synthetic"] * n,
            "model_version": ["synthetic@1"] * n,
            "created_at": [dt.datetime.now(dt.UTC)] * n,
        },
        schema=records.vector_table_schema(vectors.shape[1]),
    )


def segment_rows(texts: list[str], asset_id: str) -> pa.Table:
    rows = [
        {
            "id": segment_id_for(asset_id, "chunk", i),
            "asset_id": asset_id,
            "media_type": "document",
            "segment_type": "chunk",
            "search_text": text,
        }
        for i, text in enumerate(texts)
    ]
    return pa.Table.from_pylist(
        rows, schema=pa.schema([f for f in records.SEGMENTS_SCHEMA if f.name != "text_vector"])
    )


ASSET = "0b6c7a2e-8d4f-5a1b-9c3e-7f2d1e0a4b5c"


def test_ensure_tables_is_idempotent_and_refuses_a_different_dimension(tmp_path: Path) -> None:
    db = lancedb.connect(tmp_path / "lance")
    first = ensure_tables(db, 32, "visual-offline")
    again = ensure_tables(db, 32, "visual-offline")
    assert set(first) == {"segments", "vision__visual_offline", SEARCH_PARAMS_TABLE}
    assert again["segments"].schema == records.SEGMENTS_SCHEMA
    assert again["vision__visual_offline"].schema == records.vector_table_schema(32)
    with pytest.raises(ValueError, match="another schema"):
        ensure_tables(db, 48, "visual-offline")


def test_small_tables_get_fts_and_scalar_indexes_and_exact_search(tmp_path: Path) -> None:
    db = lancedb.connect(tmp_path / "lance", read_consistency_interval=dt.timedelta(0))
    tables = ensure_tables(db, DIM, "synthetic")
    tables["segments"].merge_insert("id").when_not_matched_insert_all().execute(
        segment_rows(["the red car drives north", "a car that is red", "red sky at night"], ASSET)
    )
    tables["vision__synthetic"].add(vector_rows(low_rank_vectors(300), ASSET))
    report = maintain_indexes(db, ann_min_rows=5000)
    seg = db.open_table("segments")
    assert {c.columns[0] for c in seg.list_indices()} == {
        "search_text",
        "id",
        "asset_id",
        "media_type",
        "segment_type",
    }
    phrase = seg.search('"red car"', query_type="fts").select(["search_text"]).limit(10).to_list()
    assert [r["search_text"] for r in phrase] == ["the red car drives north"]
    assert report["tables"]["segments"]["fts_indexed_rows"] == 3
    (vision,) = [v for v in report["vectors"] if v["table"] == "vision__synthetic"]
    assert vision["index_type"] == "exact" and vision["unindexed_rows"] == 300
    params = load_search_params(db)[("vision__synthetic", "vector")]
    assert params.index_type == "exact"
    # A second run creates nothing new and folds in rows added since.
    db.open_table("segments").merge_insert("id").when_not_matched_insert_all().execute(
        segment_rows(["a", "b", "c", "one more red car"], "1b6c7a2e-8d4f-5a1b-9c3e-7f2d1e0a4b5c")
    )
    again = maintain_indexes(db, ann_min_rows=5000)
    assert again["tables"]["segments"]["indexes_created"] == []
    assert again["tables"]["segments"]["fts_unindexed_rows"] == 0
    assert again["tables"]["segments"]["fts_indexed_rows"] == 7


def test_the_ann_index_is_tuned_to_at_least_095_recall_against_exact_search(tmp_path: Path) -> None:
    db = lancedb.connect(tmp_path / "lance", read_consistency_interval=dt.timedelta(0))
    tables = ensure_tables(db, DIM, "synthetic")
    tables["vision__synthetic"].add(vector_rows(low_rank_vectors(3000), ASSET))
    report = maintain_indexes(db, ann_min_rows=2000, sample_size=40)
    (vision,) = [v for v in report["vectors"] if v["table"] == "vision__synthetic"]
    assert vision["index_built"] is True
    assert vision["indexed_rows"] == 3000 and vision["unindexed_rows"] == 0
    assert vision["recall_at_k"] >= 0.95
    params = load_search_params(db)[("vision__synthetic", "vector")]
    assert params.index_type == "IVF_HNSW_SQ" and params.recall_at_k == vision["recall_at_k"]
    # The stored parameters reproduce the recall on queries the tuning never saw.
    tbl = db.open_table("vision__synthetic")
    rng = np.random.default_rng(7)
    unseen = low_rank_vectors(3000)[rng.choice(3000, 40, replace=False)] + 0.02 * rng.normal(size=(40, DIM))
    unseen /= np.linalg.norm(unseen, axis=1, keepdims=True)
    assert measure_recall(tbl, "vector", params, unseen.astype(np.float32)) >= 0.9
    # New rows are folded into the index by the next run.
    tbl.add(vector_rows(low_rank_vectors(500, seed=3), ASSET, start=3000))
    again = maintain_indexes(db, ann_min_rows=2000, sample_size=20)
    (vision,) = [v for v in again["vectors"] if v["table"] == "vision__synthetic"]
    assert vision["index_built"] is False
    assert vision["indexed_rows"] == 3500 and vision["unindexed_rows"] == 0
    query = apply_search_params(tbl.search(unseen[0]).limit(10), params)
    assert len(query.to_list()) == 10


READER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import lancedb
    db = lancedb.connect(sys.argv[1], read_consistency_interval=dt.timedelta(seconds=float(sys.argv[2])))
    tbl = db.open_table("vision__synthetic")
    print(tbl.count_rows(), flush=True)
    sys.stdin.readline()  # the writer has committed
    signalled = time.monotonic()
    deadline = signalled + float(sys.argv[3])
    while tbl.count_rows() == 100 and time.monotonic() < deadline:
        pass
    print(tbl.count_rows(), round(time.monotonic() - signalled, 3), flush=True)
    """
)


def test_a_reader_process_sees_a_writers_new_rows_within_its_consistency_interval(tmp_path: Path) -> None:
    uri = str(tmp_path / "lance")
    db = lancedb.connect(uri, read_consistency_interval=dt.timedelta(0))
    tbl = ensure_tables(db, DIM, "synthetic")["vision__synthetic"]
    tbl.add(vector_rows(low_rank_vectors(100), ASSET))
    interval = 0.5
    # The reader waits at most the interval plus slack for process scheduling on a busy machine.
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, uri, str(interval), str(interval + 2.0)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "100"
        tbl.add(vector_rows(low_rank_vectors(50, seed=1), ASSET, start=100))
        reader.stdin.write("committed\n")
        reader.stdin.flush()
        seen, _elapsed = reader.stdout.readline().split()
        assert seen == "150"
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0
