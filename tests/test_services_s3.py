"""S3ObjectStore and LanceDB against a real S3-compatible server process (moto) on loopback."""

from __future__ import annotations

import threading
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from dataflux_pipelines.objectstore import ObjectExists, ObjectMissing, S3ObjectStore, open_object_store
from dataflux_pipelines.settings import Settings

pytestmark = pytest.mark.services


def _settings(s3_server, tmp_path: Path, **extra: str) -> Settings:
    env = {"DATAFLUX_HOME": str(tmp_path / "home"), **s3_server.settings_env(), **extra}
    return Settings.from_env(env)


@pytest.fixture
def store(s3_server, s3_bucket: str, tmp_path: Path) -> S3ObjectStore:
    settings = _settings(s3_server, tmp_path, DATAFLUX_OBJECT_STORE_URL=f"s3://{s3_bucket}/store")
    opened = open_object_store(settings)
    assert isinstance(opened, S3ObjectStore)
    return opened


def test_open_object_store_maps_the_url_to_bucket_and_prefix(
    store: S3ObjectStore, s3_server, s3_bucket: str
) -> None:
    store.put_bytes("landing/a.bin", b"abc")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["store/landing/a.bin"]
    assert store.url == f"s3://{s3_bucket}/store"


def test_put_get_head_and_metadata_round_trip(store: S3ObjectStore) -> None:
    store.put_bytes("objects/x/original.mp4", b"\x00video", metadata={"context": "beach", "priority": "7"})
    assert store.get_bytes("objects/x/original.mp4") == b"\x00video"
    info = store.head("objects/x/original.mp4")
    assert info is not None
    assert info.key == "objects/x/original.mp4"
    assert info.size == 6
    assert info.metadata == {"context": "beach", "priority": "7"}
    assert info.etag
    with store.open_read("objects/x/original.mp4") as stream:
        assert stream.read() == b"\x00video"


def test_a_range_read_fetches_only_the_requested_bytes(store: S3ObjectStore) -> None:
    # The web UI's player seeks with HTTP ranges; over S3 each one is a ranged GET, not the whole file.
    body = bytes(range(256)) * 8
    store.put_bytes("objects/r/original.mp4", body)
    with store.open_range("objects/r/original.mp4", 300, 100) as stream:
        assert stream.read() == body[300:400]
    with store.open_range("objects/r/original.mp4", 2000, None) as stream:
        assert stream.read() == body[2000:]
    with pytest.raises(ObjectMissing), store.open_range("nope.bin", 0, 1):
        pass


def test_missing_objects_raise_or_return_none(store: S3ObjectStore) -> None:
    assert store.head("nope.bin") is None
    with pytest.raises(ObjectMissing):
        store.get_bytes("nope.bin")
    with pytest.raises(ObjectMissing), store.open_read("nope.bin"):
        pass
    with pytest.raises(ObjectMissing), store.local_copy("nope.bin"):
        pass


def test_put_file_and_local_copy_round_trip_and_clean_up(store: S3ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    store.put_file("landing/clip.mp4", source, metadata={"collection": "c1"})
    store.put_file("landing/clip-copy.mp4", source, if_absent=True)
    with store.local_copy("landing/clip.mp4") as local:
        assert local.suffix == ".mp4"
        assert local.read_bytes() == source.read_bytes()
        copied = local
    assert not copied.exists()
    assert store.head("landing/clip.mp4").metadata == {"collection": "c1"}  # type: ignore[union-attr]
    assert store.get_bytes("landing/clip-copy.mp4") == source.read_bytes()


def test_list_returns_keys_under_a_prefix_only(store: S3ObjectStore) -> None:
    for key in ("landing/b.jpg", "landing/a.jpg", "landing/sub dir/c.jpg", "objects/z.jpg"):
        store.put_bytes(key, key.encode())
    listed = {info.key: info.size for info in store.list("landing/")}
    assert listed == {"landing/a.jpg": 13, "landing/b.jpg": 13, "landing/sub dir/c.jpg": 21}
    assert {info.key for info in store.list()} == {*listed, "objects/z.jpg"}


def test_delete_and_delete_prefix_remove_exactly_the_named_objects(store: S3ObjectStore) -> None:
    for i in range(5):
        store.put_bytes(f"objects/asset1/derived/thumb{i}.jpg", b"t")
    store.put_bytes("objects/asset2/original.jpg", b"o")
    store.delete("objects/asset2/original.jpg")
    store.delete("objects/asset2/never-existed.jpg")  # S3 semantics: deleting nothing is fine
    assert store.head("objects/asset2/original.jpg") is None
    assert store.delete_prefix("objects/asset1/") == 5
    assert list(store.list("objects/")) == []


def test_a_conditional_put_never_replaces_an_existing_object(store: S3ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("landing/dup.bin", b"first", if_absent=True)
    with pytest.raises(ObjectExists):
        store.put_bytes("landing/dup.bin", b"second", if_absent=True)
    other = tmp_path / "other.bin"
    other.write_bytes(b"third")
    with pytest.raises(ObjectExists):
        store.put_file("landing/dup.bin", other, if_absent=True)
    assert store.get_bytes("landing/dup.bin") == b"first"
    store.put_bytes("landing/dup.bin", b"overwrite")  # unconditional writes still replace
    assert store.get_bytes("landing/dup.bin") == b"overwrite"


def _race(store: S3ObjectStore, key: str, payloads: dict[str, bytes]) -> dict[str, str]:
    """Start one conditional upload per payload at the same instant; name -> "won" or "lost"."""
    barrier = threading.Barrier(len(payloads))
    outcomes: dict[str, str] = {}

    def upload(name: str, payload: bytes) -> None:
        barrier.wait(timeout=30)
        try:
            store.put_bytes(key, payload, if_absent=True)
            outcomes[name] = "won"
        except ObjectExists:
            outcomes[name] = "lost"

    threads = [threading.Thread(target=upload, args=item) for item in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_concurrent_uploads_of_the_same_key_have_exactly_one_winner(store: S3ObjectStore) -> None:
    payloads = {"a": b"A" * 200_000, "b": b"B" * 200_000}
    for n in range(10):
        key = f"landing/race-{n}.bin"
        outcomes = _race(store, key, payloads)
        assert sorted(outcomes.values()) == ["lost", "won"], (n, outcomes)
        (winner,) = [name for name, outcome in outcomes.items() if outcome == "won"]
        assert store.get_bytes(key) == payloads[winner]


def test_lancedb_tables_live_on_s3_with_the_settings_storage_options(
    s3_server, s3_bucket: str, tmp_path: Path
) -> None:
    settings = _settings(s3_server, tmp_path, DATAFLUX_LANCE_URI=f"s3://{s3_bucket}/lance")
    vector = pa.list_(pa.float32(), 3)
    db = lancedb.connect(settings.lance_uri, storage_options=settings.store_options)
    table = db.create_table(
        "segments",
        data=pa.table({"id": ["a", "b"], "vector": pa.array([[1, 0, 0], [0, 1, 0]], type=vector)}),
    )
    merged = (
        table.merge_insert("id")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute(pa.table({"id": ["b", "c"], "vector": pa.array([[0, 0, 1], [0.9, 0.1, 0]], type=vector)}))
    )
    assert (merged.num_updated_rows, merged.num_inserted_rows) == (1, 1)

    # A second connection (another process in production) sees the merged rows.
    reader = lancedb.connect(settings.lance_uri, storage_options=settings.store_options)
    hits = reader.open_table("segments").search([1.0, 0.0, 0.0]).limit(2).to_list()
    assert [hit["id"] for hit in hits] == ["a", "c"]
    assert reader.open_table("segments").count_rows() == 3
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys and all(key.startswith("lance/segments.lance/") for key in keys)
