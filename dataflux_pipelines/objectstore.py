"""Object storage behind one small interface: a local directory or an S3 bucket prefix."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urlparse

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.settings import Settings

_CHUNK = 1024 * 1024
_MAX_BACKOFF_S = 8.0
_T = TypeVar("_T")
log = logging.getLogger(__name__)


class ObjectStoreUnavailable(MediaError):
    """The object store kept failing (5xx, timeouts, dropped connections) after every retry."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.OBJECT_STORE_UNAVAILABLE, message)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter for transient object-store faults."""

    attempts: int = 5
    base_s: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.s3_max_attempts, settings.s3_retry_base_s)

    def call(self, what: str, fn: Callable[[], _T]) -> _T:
        """`fn()`, tried again after a transient fault; `ObjectStoreUnavailable` once the tries are spent."""
        started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                fault = transient_fault(exc)
                if fault is None:
                    raise
                if attempt == self.attempts:
                    raise ObjectStoreUnavailable(
                        f"{what} failed {attempt} time(s) in {time.monotonic() - started:.1f} s; "
                        f"last: {fault}"
                    ) from exc
                delay = random.uniform(0, min(_MAX_BACKOFF_S, self.base_s * 2 ** (attempt - 1)))
                log.warning(
                    "%s: %s (try %d of %d), again in %.2f s", what, fault, attempt, self.attempts, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def transient_fault(exc: BaseException) -> str | None:
    """A sentence for a fault worth retrying (a 5xx, throttling, a timeout, a dropped connection)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(error.get("Code", ""))
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
            return f"HTTP {status or '?'} {code}".strip()
        return None
    if isinstance(exc, ConnectionError | HTTPClientError | IncompleteReadError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, S3UploadFailedError):
        # boto3's managed upload folds the HTTP error into its message.
        text = str(exc)
        if any(f"({c})" in text or f" {c} " in text for c in ("500", "502", "503", "504")) or any(
            word in text for word in ("SlowDown", "InternalError", "ServiceUnavailable", "timeout", "Timeout")
        ):
            return text
    return None


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

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        url: str,
        scratch: Path,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.url = url
        self.scratch = scratch
        # Every call goes through one retry policy (botocore's own retries are off, see `s3_client`);
        # a PUT is whole or absent, so a retried or failed write never leaves half an object.
        self.retry = retry or RetryPolicy()

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        extra: dict[str, Any] = {"Metadata": metadata or {}}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        try:
            self.retry.call(
                f"PUT {key}",
                lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra),
            )
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise ObjectExists(key) from exc
            raise

    def put_file(
        self, key: str, path: Path, *, if_absent: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        if not if_absent:
            self.retry.call(
                f"upload {key}",
                lambda: self.client.upload_file(
                    str(path), self.bucket, self._key(key), ExtraArgs={"Metadata": metadata or {}}
                ),
            )
            return
        # Conditional multipart uploads are not universally supported; a single PUT is.
        self.put_bytes(key, path.read_bytes(), if_absent=True, metadata=metadata)

    def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            with contextlib.closing(body):
                return body.read()  # a stall mid-body is retried whole

        try:
            return self.retry.call(f"GET {key}", read)
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            body = self.retry.call(
                f"GET {key}", lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            )
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc
        with contextlib.closing(body):
            yield body

    @contextlib.contextmanager
    def open_range(self, key: str, start: int, length: int | None) -> Iterator[IO[bytes]]:
        """Only the requested bytes are fetched (an HTTP Range GET), so seeking a long video is cheap."""
        span = f"bytes={start}-" if length is None else f"bytes={start}-{start + length - 1}"
        try:
            body = self.retry.call(
                f"GET {key} {span}",
                lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=span)["Body"],
            )
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
                self.retry.call(
                    f"download {key}", lambda: self.client.download_file(self.bucket, self._key(key), name)
                )
            except self.client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    raise ObjectMissing(key) from exc
                raise
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.retry.call(
                f"HEAD {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            )
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
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                args["ContinuationToken"] = token
            page: dict[str, Any] = self.retry.call(
                f"LIST {prefix}", functools.partial(self.client.list_objects_v2, **args)
            )
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    obj["Key"][len(self.prefix) :],
                    int(obj["Size"]),
                    obj["ETag"].strip('"'),
                    obj["LastModified"],
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def delete(self, key: str) -> None:
        self.retry.call(
            f"DELETE {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        )

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self.retry.call(
                f"DELETE {len(batch)} under {prefix}",
                functools.partial(
                    self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
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
        # One attempt per botocore call: `RetryPolicy` retries (bounded by DATAFLUX_S3_MAX_ATTEMPTS).
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=settings.s3_timeout_s,
            read_timeout=settings.s3_timeout_s,
        ),
    )


def open_object_store(settings: Settings) -> LocalObjectStore | S3ObjectStore:
    """The configured object store: `file://…` or `s3://bucket/prefix`."""
    parsed = urlparse(settings.object_store_url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path))
    if parsed.scheme == "s3":
        return S3ObjectStore(
            parsed.netloc,
            parsed.path,
            s3_client(settings),
            settings.object_store_url,
            settings.scratch_dir,
            RetryPolicy.from_settings(settings),
        )
    raise ValueError(f"unsupported object store URL {settings.object_store_url!r}")
