"""Machine-readable output for the verbs that print data: one `--json` flag, one encoder.

    @json_option
    def services(as_json: bool, ...):
        items = ...
        if as_json:
            return echo_json([...])

`to_jsonable` turns what the verbs hold into JSON values: protobuf messages (field names as in
the .proto, protobuf's JSON mapping: bytes as base64, 64-bit integers as strings),
dataclasses, paths, bytes (hex), mappings and sequences.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from google.protobuf import json_format
from google.protobuf.message import Message

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The `--json` flag (parameter ``as_json``) of a verb that prints data."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON (for scripts).")(fn)


def _message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return out


def to_jsonable(value: Any) -> Any:
    """A JSON value for ``value`` (see the module docstring)."""
    if isinstance(value, Message):
        return _message(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


__all__ = ["echo_json", "json_option", "to_jsonable"]
