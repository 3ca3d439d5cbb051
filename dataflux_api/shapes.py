"""Response shapes derived from the stored records, for REST (msgspec) and MCP (pydantic).

`dataflux_pipelines.records` declares each row once; the public fields of a record become the fields
of its REST Struct and of its MCP model here, so the store, the OpenAPI document and the MCP output
schemas cannot drift apart (`tests/test_shapes.py` compares all three).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from pydantic import BaseModel, Field, create_model

from dataflux_pipelines.records import public_fields

FieldSpec = tuple[str, Any, Any]  # (name, type, default or dataclasses.MISSING)
NO_DEFAULT = dataclasses.MISSING


def record_fields(record: type, *, exclude: Iterable[str] = ()) -> list[FieldSpec]:
    skip = set(exclude)
    return [f for f in public_fields(record) if f[0] not in skip]


def struct_fields(struct: type[msgspec.Struct]) -> list[FieldSpec]:
    """(name, type, default) of a msgspec Struct, to derive another shape from it."""
    info = msgspec.inspect.type_info(struct)
    out: list[FieldSpec] = []
    hints = struct.__annotations__ | {
        k: v for base in struct.__mro__[1:] for k, v in getattr(base, "__annotations__", {}).items()
    }
    for f in info.fields:  # type: ignore[attr-defined]
        default = f.default if f.default is not msgspec.NODEFAULT else NO_DEFAULT
        if f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        out.append((f.name, hints.get(f.name, Any), default))
    return out


def rest_struct(
    name: str, fields: Iterable[FieldSpec], *, bases: tuple[type, ...] = ()
) -> type[msgspec.Struct]:
    """A keyword-only msgspec Struct with these fields (required ones first, as msgspec wants)."""
    specs: list[Any] = []
    for field_name, hint, default in fields:
        if default is NO_DEFAULT:
            specs.append((field_name, hint))
        elif isinstance(default, list | dict):
            specs.append((field_name, hint, msgspec.field(default_factory=type(default))))
        else:
            specs.append((field_name, hint, default))
    return msgspec.defstruct(name, specs, bases=bases or None, kw_only=True)


def mcp_model(
    name: str,
    fields: Iterable[FieldSpec],
    *,
    descriptions: Mapping[str, str] | None = None,
    doc: str | None = None,
) -> type[BaseModel]:
    """A pydantic model with these fields; `descriptions` tell an agent what a field holds."""
    descriptions = descriptions or {}
    definitions: dict[str, Any] = {}
    for field_name, hint, default in fields:
        description = descriptions.get(field_name)
        if default is NO_DEFAULT:
            definitions[field_name] = (hint, Field(description=description))
        elif isinstance(default, list | dict):
            definitions[field_name] = (hint, Field(default_factory=type(default), description=description))
        else:
            definitions[field_name] = (hint, Field(default=default, description=description))
    model = create_model(name, __doc__=doc, **definitions)
    return model


def project(row: Mapping[str, Any], fields: Iterable[FieldSpec]) -> dict[str, Any]:
    """The values of `row` for these fields (missing ones fall back to the field's default)."""
    out = {}
    for field_name, _, default in fields:
        if row.get(field_name) is not None:
            out[field_name] = row[field_name]
        elif default is not NO_DEFAULT:
            out[field_name] = type(default)(default) if isinstance(default, list | dict) else default
    return out
