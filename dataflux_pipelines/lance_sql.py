"""Safe pieces of Lance `where` strings: user input only enters as escaped literals on allow-listed columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from dataflux_pipelines.identity import is_uuid


class FilterError(ValueError):
    """A filter that cannot be expressed safely; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def literal(value: str | int | float | bool | dt.datetime) -> str:
    """A SQL literal for Lance's DataFusion filter dialect."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise FilterError("value", "not a finite number")
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        utc = value.astimezone(dt.UTC) if value.year > 1 else value.replace(tzinfo=dt.UTC)
        # %Y does not pad years below 1000 (year 1 is "1-01-01"): pad it, or the filter does not parse.
        return f"CAST('{utc.year:04d}-{utc.strftime('%m-%d %H:%M:%S.%f')}' AS TIMESTAMP)"
    if not isinstance(value, str):
        raise FilterError("value", f"unsupported literal type {type(value).__name__}")
    if "\x00" in value:
        raise FilterError("value", "contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def uuid_literal(value: str, field: str = "id") -> str:
    if not is_uuid(value):
        raise FilterError(field, f"{value!r} is not a UUID")
    return f"'{value.lower()}'"


def in_list(column: str, values: Iterable[str], *, uuids: bool = False) -> str:
    items = [uuid_literal(v, column) if uuids else literal(v) for v in values]
    if not items:
        return "false"
    return f"{column} IN ({', '.join(items)})"
