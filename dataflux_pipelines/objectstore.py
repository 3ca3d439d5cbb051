"""Object storage behind one small interface: a local directory or an S3 bucket prefix."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from dataflux_pipelines.settings import Settings

_CHUNK = 1024 * 1024


class ObjectExists(Exception):
    """A conditional write lost: the key already holds an object."""


class ObjectMissing(KeyError):
    """No object under that key."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: dt.datetime
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    url: str

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None: ...
    def put_file(
        self, key: str, path: Path, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def open_read(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...
    def open_range(
        self, key: str, start: int, length: int | None
    ) -> contextlib.AbstractContextManager[IO[bytes]]: ...
    def local_copy(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in (".", "..")
    ):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalObjectStore:
    """Objects as files under a root folder; writes go through a temp file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"
        root.mkdir(parents=True, exist_ok=True)
        self._tmp = root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def path_for(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _publish(self, tmp: Path, key: str, if_absent: bool, metadata: dict[str, str] | None) -> None:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if if_absent:
            try:
                os.link(tmp, target)  # atomic create-if-absent
            except FileExistsError as exc:
                raise ObjectExists(key) from exc
            finally:
                tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, target)
        if metadata:
            import json

            meta = target.with_name(target.name + ".meta.json")
            meta.write_text(json.dumps(metadata))

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        fd, name = tempfile.mkstemp(dir=self._tmp)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self._publish(Path(name), key, if_absent, metadata)

    def put_file(
        self, key: str, path: Path, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        fd, name = tempfile.mkstemp(dir=self._tmp)
        os.close(fd)
        shutil.copyfile(path, name)
        self._publish(Path(name), key, if_absent, metadata)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            stream = self.path_for(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        with stream:
            yield stream

    @contextlib.contextmanager
    def open_range(self, key: str, start: int, length: int | None) -> Iterator[IO[bytes]]:
        """A reader positioned at `start` (the caller stops after `length` bytes)."""
        with self.open_read(key) as stream:
            stream.seek(start)
            yield stream

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self.path_for(key)
        if not path.is_file():
            raise ObjectMissing(key)
        yield path

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return self._info(key, path, st)

    def _info(self, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        meta_path = path.with_name(path.name + ".meta.json")
        metadata: dict[str, str] = {}
        if meta_path.is_file():
            import json

            metadata = json.loads(meta_path.read_text())
        etag = hashlib.md5(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()).hexdigest()
        modified = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC)
        return ObjectInfo(key, st.st_size, etag, modified, metadata)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix if prefix.endswith("/") or not prefix else (self.root / prefix).parent
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not (Path(dirpath) == self.root and d == ".tmp"))
            for name in sorted(filenames):
                if name.endswith(".meta.json"):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # removed while listing
                yield self._info(key, path, st)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".meta.json").unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        target = self.root / prefix
        if prefix.endswith("/") and target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        return len(keys)


class S3ObjectStore:
    """Objects under `s3://bucket/prefix`, through boto3 (works with MinIO and moto's server)."""

    def __init__(self, bucket: str, prefix: str, client: Any, url: str, scratch: Path) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.url = url
        self.scratch = scratch

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        extra: dict[str, Any] = {"Metadata": metadata or {}}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise ObjectExists(key) from exc
            raise

    def put_file(
        self, key: str, path: Path, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        if not if_absent:
            self.client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs={"Metadata": metadata or {}}
            )
            return
        # Conditional multipart uploads are not universally supported; a single PUT is.
        self.put_bytes(key, path.read_bytes(), if_absent=True, metadata=metadata)

    def get_bytes(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc
        with contextlib.closing(body):
            return body.read()

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc
        with contextlib.closing(body):
            yield body

    @contextlib.contextmanager
    def open_range(self, key: str, start: int, length: int | None) -> Iterator[IO[bytes]]:
        """Only the requested bytes are fetched (an HTTP Range GET), so seeking a long video is cheap."""
        span = f"bytes={start}-" if length is None else f"bytes={start}-{start + length - 1}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=span)["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc
        with contextlib.closing(body):
            yield body

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        suffix = Path(key).suffix
        fd, name = tempfile.mkstemp(dir=self.scratch, suffix=suffix)
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, self._key(key), name)
            except self.client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    raise ObjectMissing(key) from exc
                raise
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            key,
            int(resp["ContentLength"]),
            resp["ETag"].strip('"'),
            resp["LastModified"],
            dict(resp.get("Metadata") or {}),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    obj["Key"][len(self.prefix) :],
                    int(obj["Size"]),
                    obj["ETag"].strip('"'),
                    obj["LastModified"],
                )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)


def s3_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def open_object_store(settings: Settings) -> LocalObjectStore | S3ObjectStore:
    """The configured object store: `file://…` or `s3://bucket/prefix`."""
    parsed = urlparse(settings.object_store_url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path))
    if parsed.scheme == "s3":
        return S3ObjectStore(
            parsed.netloc, parsed.path, s3_client(settings), settings.object_store_url, settings.scratch_dir
        )
    raise ValueError(f"unsupported object store URL {settings.object_store_url!r}")
