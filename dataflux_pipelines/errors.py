"""Errors that are values: a stable reason code and a sentence a user can act on."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    EMPTY_FILE = "empty_file"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    CORRUPT_MEDIA = "corrupt_media"
    TRUNCATED_MEDIA = "truncated_media"
    ENCRYPTED_DOCUMENT = "encrypted_document"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TOO_MANY_FRAMES = "too_many_frames"
    DECODE_TIMEOUT = "decode_timeout"
    DECODE_MEMORY_LIMIT = "decode_memory_limit"
    DECODER_CRASHED = "decoder_crashed"
    NO_TEXT = "no_text"
    MISSING_SOURCE = "missing_source"
    STORE_ERROR = "store_error"
    INTERNAL_ERROR = "internal_error"
    TYPE_MISMATCH = "type_mismatch"  # the name says one media type, the bytes are another
    OBJECT_STORE_UNAVAILABLE = "object_store_unavailable"  # S3 kept failing after the retries
    TIME_BUDGET_EXCEEDED = "time_budget_exceeded"  # the file used up DATAFLUX_FILE_TIME_BUDGET_S
    RUN_DIED = "run_died"  # the run processing the file died (killed, rebooted) too many times


class MediaError(Exception):
    """A file DataFlux cannot use, with the reason code stored in the catalog and Dagster."""

    def __init__(self, reason: Reason | str, message: str) -> None:
        self.reason = Reason(reason)
        self.message = message
        super().__init__(f"{self.reason.value}: {message}")

    def __reduce__(self) -> tuple[type[MediaError], tuple[str, str]]:
        # Pickles as (reason, message), so it crosses process boundaries intact.
        return (MediaError, (self.reason.value, self.message))

    def to_dict(self) -> dict[str, str]:
        return {"reason_code": self.reason.value, "message": self.message}
