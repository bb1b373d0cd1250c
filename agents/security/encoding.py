"""Canonical, deterministic byte encoding for protocol messages.

One value has exactly one encoding, and the decoder refuses every other byte string (wrong
tags, unsorted or duplicate map keys, trailing bytes, non-UTF-8 text, out-of-range integers).
That makes encodings safe to sign, to use as AEAD associated data and to carry in a protobuf
`bytes` field.

Wire format (tag byte, then):
    0x00 None | 0x01 False | 0x02 True
    0x03 int   8-byte signed big-endian
    0x04 bytes u32 length + data
    0x05 str   u32 length + UTF-8
    0x06 list  u32 count + items
    0x07 map   u32 count + (str key, value) pairs, keys strictly increasing by UTF-8 bytes

Dataclasses encode as a map of their fields plus the key "@" holding the wire name
(`WIRE_NAME` class attribute or the class name), so a message of one type never decodes as
another with the same fields. `decode_as(cls, data)` rebuilds it from type hints; supported field
types: None, bool, int (and IntEnum/IntFlag), str (and StrEnum), bytes, `X | None`,
`tuple[X, ...]`, and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
import typing
from functools import cache
from typing import Any, TypeVar

from agents.security.errors import ErrorCode, ProtocolError

MAX_LEN = 16 * 1024 * 1024
MAX_DEPTH = 32
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
TYPE_KEY = "@"

T = TypeVar("T")


def _malformed(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MALFORMED, message)


def encode(value: Any) -> bytes:
    """Return the canonical encoding of `value`."""
    out = bytearray()
    _enc(value, out, 0)
    return bytes(out)


def _enc(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _malformed("value nested too deeply")
    if value is None:
        out.append(0x00)
    elif value is False:
        out.append(0x01)
    elif value is True:
        out.append(0x02)
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise _malformed(f"integer {value} does not fit in 64 bits")
        out.append(0x03)
        out += struct.pack(">q", int(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out.append(0x04)
        out += struct.pack(">I", len(data))
        out += data
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out.append(0x05)
        out += struct.pack(">I", len(data))
        out += data
    elif isinstance(value, list | tuple):
        out.append(0x06)
        out += struct.pack(">I", len(value))
        for item in value:
            _enc(item, out, depth + 1)
    elif isinstance(value, dict):
        _enc_map(value, out, depth)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        fields[TYPE_KEY] = wire_name(type(value))
        _enc_map(fields, out, depth)
    else:
        raise _malformed(f"cannot encode a {type(value).__name__}")


def _enc_map(mapping: dict[Any, Any], out: bytearray, depth: int) -> None:
    items = []
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise _malformed("map keys must be strings")
        items.append((key.encode("utf-8"), item))
    items.sort(key=lambda pair: pair[0])
    out.append(0x07)
    out += struct.pack(">I", len(items))
    for key_bytes, item in items:
        out.append(0x05)
        out += struct.pack(">I", len(key_bytes))
        out += key_bytes
        _enc(item, out, depth + 1)


def decode(data: bytes) -> Any:
    """Decode canonical bytes into None/bool/int/bytes/str/list/dict; refuse anything else."""
    value, pos = _dec(memoryview(bytes(data)), 0, 0)
    if pos != len(data):
        raise _malformed("trailing bytes after value")
    return value


def _take(buf: memoryview, pos: int, n: int) -> tuple[bytes, int]:
    if n < 0 or pos + n > len(buf):
        raise _malformed("truncated input")
    return bytes(buf[pos : pos + n]), pos + n


def _dec(buf: memoryview, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise _malformed("value nested too deeply")
    tag_bytes, pos = _take(buf, pos, 1)
    tag = tag_bytes[0]
    if tag == 0x00:
        return None, pos
    if tag == 0x01:
        return False, pos
    if tag == 0x02:
        return True, pos
    if tag == 0x03:
        raw, pos = _take(buf, pos, 8)
        return struct.unpack(">q", raw)[0], pos
    if tag in (0x04, 0x05, 0x06, 0x07):
        raw, pos = _take(buf, pos, 4)
        (length,) = struct.unpack(">I", raw)
        if length > MAX_LEN:
            raise _malformed("length too large")
        if tag == 0x04:
            return _take(buf, pos, length)
        if tag == 0x05:
            data, pos = _take(buf, pos, length)
            try:
                return data.decode("utf-8", errors="strict"), pos
            except UnicodeDecodeError as exc:
                raise _malformed("text is not UTF-8") from exc
        if tag == 0x06:
            items = []
            for _ in range(length):
                item, pos = _dec(buf, pos, depth + 1)
                items.append(item)
            return items, pos
        result: dict[str, Any] = {}
        previous: bytes | None = None
        for _ in range(length):
            key, pos = _dec(buf, pos, depth + 1)
            if not isinstance(key, str):
                raise _malformed("map key is not a string")
            key_bytes = key.encode("utf-8")
            if previous is not None and key_bytes <= previous:
                raise _malformed("map keys not strictly increasing")
            previous = key_bytes
            result[key], pos = _dec(buf, pos, depth + 1)
        return result, pos
    raise _malformed(f"unknown tag 0x{tag:02x}")


def wire_name(cls: type) -> str:
    """The name a dataclass carries on the wire."""
    return str(getattr(cls, "WIRE_NAME", cls.__name__))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode_as(cls: type[T], data: bytes) -> T:
    """Decode canonical bytes into an instance of dataclass `cls` (strict: no missing/extra)."""
    return typing.cast(T, _convert(cls, decode(data)))


def from_value(cls: type[T], value: Any) -> T:
    """Rebuild a dataclass from an already-decoded value."""
    return typing.cast(T, _convert(cls, value))


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1:
            raise _malformed(f"unsupported union {tp}")
        return _convert(non_none[0], value)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise _malformed("expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        if len(args) != len(value):
            raise _malformed("tuple has the wrong length")
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
    if tp is type(None):
        if value is not None:
            raise _malformed("expected None")
        return None
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _convert_dataclass(tp, value)
        if issubclass(tp, bool):
            if not isinstance(value, bool):
                raise _malformed("expected a bool")
            return value
        if issubclass(tp, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _malformed("expected an integer")
            if issubclass(tp, enum.Enum):
                try:
                    return tp(value)
                except ValueError as exc:
                    raise _malformed(f"{value} is not a valid {tp.__name__}") from exc
            return value
        if issubclass(tp, str):
            if not isinstance(value, str):
                raise _malformed("expected text")
            if issubclass(tp, enum.Enum):
                try:
                    return tp(value)
                except ValueError as exc:
                    raise _malformed(f"{value!r} is not a valid {tp.__name__}") from exc
            return value
        if issubclass(tp, bytes):
            if not isinstance(value, bytes):
                raise _malformed("expected bytes")
            return value
    raise _malformed(f"unsupported field type {tp}")


def _convert_dataclass(cls: type, value: Any) -> Any:
    if not isinstance(value, dict):
        raise _malformed(f"expected a {wire_name(cls)} map")
    if value.get(TYPE_KEY) != wire_name(cls):
        raise _malformed(f"expected a {wire_name(cls)}, got {value.get(TYPE_KEY)!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if set(value) != {*names, TYPE_KEY}:
        raise _malformed(f"{wire_name(cls)} has missing or unknown fields")
    kwargs = {name: _convert(hints[name], value[name]) for name in names}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _malformed(f"invalid {wire_name(cls)}: {exc}") from exc
