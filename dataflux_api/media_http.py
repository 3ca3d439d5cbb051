"""HTTP delivery of stored media: single byte ranges (206/416), validators (ETag, Last-Modified) and caching.

Browsers seek in `<video>`/`<audio>` only when the server answers `Range` with 206, so every media
route goes through `media_response`. Multi-range requests are answered with the whole object (RFC 9110
lets a server ignore `Range`), which no media element sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import format_datetime

from litestar import Response
from litestar.response import Stream

from dataflux_api.service import DataFlux, MediaObject

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
# Thumbnails and keyframes change only when a file is re-analysed: an hour of freshness, then the
# browser revalidates with If-None-Match and gets a 304 while the ETag is unchanged.
IMAGE_CACHE = "private, max-age=3600"
ORIGINAL_CACHE = "private, max-age=3600"


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(ValueError):
    """The range starts at or beyond the end of the object."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of a `Range: bytes=…` header, None to send everything, `Unsatisfiable` for 416."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # multi-range, another unit, or garbage: ignored, the whole object is sent
    first, last = match.groups()
    if not first and not last:
        return None
    if last and first and int(last) < int(first):
        return None  # an invalid spec is ignored, not refused
    if size == 0 or (not first and int(last) == 0):
        raise Unsatisfiable(header)
    if not first:  # suffix range: the last N bytes
        return ByteRange(max(size - int(last), 0), size - 1)
    start = int(first)
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def _etag(media: MediaObject) -> str | None:
    return f'"{media.etag}"' if media.etag else None


def _not_modified(headers: Mapping[str, str], etag: str | None) -> bool:
    wanted = headers.get("if-none-match")
    if not wanted or etag is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag in tags


def media_response(
    request_headers: Mapping[str, str],
    service: DataFlux,
    media: MediaObject,
    *,
    attachment: bool,
    cache_control: str,
) -> Response[bytes] | Stream:
    """The object as a 200, 206 (one range), 304 (unchanged) or 416 (range beyond the end)."""
    etag = _etag(media)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
    }
    if etag:
        headers["ETag"] = etag
    if media.modified is not None:
        headers["Last-Modified"] = format_datetime(media.modified, usegmt=True)
    if _not_modified(request_headers, etag):
        return Response(b"", status_code=304, headers=headers)
    disposition = "attachment" if attachment else "inline"
    # The name is stored sanitised at landing; quote characters are still dropped for the header.
    safe = media.filename.replace('"', "").replace("\\", "")
    headers["Content-Disposition"] = f'{disposition}; filename="{safe}"'
    size = media.size
    wanted: ByteRange | None = None
    if size is not None:
        if_range = request_headers.get("if-range")
        # If-Range with a stale validator means "send it all": the client's partial copy is outdated.
        honour = not if_range or (etag is not None and if_range.strip() == etag)
        try:
            wanted = parse_range(request_headers.get("range"), size) if honour else None
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(b"", status_code=416, headers=headers, media_type=media.content_type)
    if wanted is None:
        if size is not None:
            headers["Content-Length"] = str(size)
        return Stream(service.read_object(media.key), media_type=media.content_type, headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    headers["Content-Length"] = str(wanted.length)
    body: Iterator[bytes] = service.read_object(media.key, start=wanted.start, length=wanted.length)
    return Stream(body, media_type=media.content_type, headers=headers, status_code=206)
