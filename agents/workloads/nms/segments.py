"""The NMS's on-disk block log: append-only segment files of checksummed records.

Standard library only (copied into the NMS image with the server).

Layout: ``<root>/<8 hex>.seg``, numbered in the order they were started; each holds records
back to back and grows to at most ``segment_bytes``. A record is an 80-byte header then
``length`` bytes of data::

    magic "NMSR" | kind u8 (1 data, 2 free, 3 zero-filled block) | version u8 (1) | reserved u16 (0)
    | block id u64 | sequence u64 | alloc token 16 bytes | length u32
    | SHA-256 of the data 32 bytes | CRC-32 of the 76 header bytes before it u32

(little endian). The sequence number grows by one per record across the whole log; the record
of a block with the highest sequence number is its current state (data, or freed). A record is
never rewritten in place: an overwrite or a free appends a new record, so every segment but the
newest is immutable, and a container running from a committed image copies no old segment up
into its writable layer (`SegmentLog` starts a new segment each time it is opened).

Scanning on open (`SegmentLog.scan`) checks every record:

* a header that is incomplete, fails its CRC, or whose data runs past the end of the file, with
  no valid header after it in that segment, is a **torn tail** (a write cut short by a crash):
  the segment is truncated there and the scan goes on;
* such a header *followed* by a valid one means records in the middle of a segment are unreadable,
  so which blocks they held is unknown: `LogDamaged` is raised (serving on could hand out an older
  version of a block as if it were current);
* a valid header whose data does not match its SHA-256 is a **corrupt record**: it stays the
  block's current version and every read of that block is refused (`Record.damaged`) until the
  block is written again.

Crash safety of `compact`: the live records are copied unchanged (sequence numbers included)
into new segments numbered above every old one, those are fsynced, then the old segments are
deleted oldest first. A record is always superseded by one in the same or a higher-numbered
segment, so whatever prefix of the old segments a crash leaves deleted, the highest sequence
number per block still names its current state.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"NMSR"
VERSION = 1
KIND_DATA = 1
KIND_FREE = 2
KIND_ZERO = 3  # a freshly allocated block: all zero bytes, none stored
_HEAD = struct.Struct("<4sBBHQQ16sI32s")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEAD.size + _CRC.size  # 80
#: largest data a record may carry (the server's block size is at most 1 MiB)
MAX_RECORD_DATA = 1 << 20
DEFAULT_SEGMENT_BYTES = 4 << 20
SUFFIX = ".seg"
NO_TOKEN = bytes(16)


class LogDamaged(Exception):
    """Records in the middle of a segment cannot be read: the log cannot be trusted."""


@dataclass(frozen=True, slots=True)
class Record:
    """Where one record lies and what its header says."""

    kind: int
    block_id: int
    seq: int
    token: bytes
    length: int
    digest: bytes
    segment: int
    offset: int  # of the header
    damaged: bool = False  # the data does not match `digest`

    @property
    def size(self) -> int:
        """Header plus data bytes."""
        return HEADER_BYTES + self.length


def encode_header(kind: int, block_id: int, seq: int, token: bytes, data: bytes) -> bytes:
    """The 80-byte header of a record carrying `data` (empty for a free or a zero block)."""
    head = _HEAD.pack(MAGIC, kind, VERSION, 0, block_id, seq, token, len(data),
                      hashlib.sha256(data).digest())
    return head + _CRC.pack(zlib.crc32(head))


def decode_header(raw: bytes, segment: int, offset: int) -> Record | None:
    """The record a header describes, or None when it is not a valid header."""
    if len(raw) < HEADER_BYTES:
        return None
    head = raw[:_HEAD.size]
    if _CRC.unpack_from(raw, _HEAD.size)[0] != zlib.crc32(head):
        return None
    magic, kind, version, _, block_id, seq, token, length, digest = _HEAD.unpack(head)
    if magic != MAGIC or version != VERSION or kind not in (KIND_DATA, KIND_FREE, KIND_ZERO):
        return None
    if length > MAX_RECORD_DATA or (kind != KIND_DATA and length):
        return None
    return Record(kind, block_id, seq, token, length, digest, segment, offset)


def segment_name(number: int) -> str:
    """File name of segment `number`."""
    return f"{number:08x}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentLog:
    """Append-only records in numbered segment files under `root` (not thread-safe: the
    caller serializes). `sync` fsyncs every append before returning."""

    def __init__(self, root: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 sync: bool = False) -> None:
        if segment_bytes < HEADER_BYTES + 1:
            raise ValueError("segments must hold at least one record header and a byte")
        self.root = root
        self.segment_bytes = segment_bytes
        self.sync = sync
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._active: int | None = None  # the segment appends go to (created lazily)
        self._active_size = 0
        self.truncated: list[tuple[int, int]] = []  # (segment, offset) of torn tails cut off

    def segments(self) -> list[int]:
        """Numbers of the segment files present, ascending."""
        out = []
        for p in self.root.iterdir():
            if p.name.endswith(SUFFIX):
                with contextlib.suppress(ValueError):
                    out.append(int(p.name[:-len(SUFFIX)], 16))
        return sorted(out)

    def path(self, number: int) -> Path:
        """Path of segment `number`."""
        return self.root / segment_name(number)

    def bytes_on_disk(self) -> int:
        """Total size of every segment file."""
        return sum(self.path(n).stat().st_size for n in self.segments())

    # -- reading ---------------------------------------------------------------------------

    def scan(self) -> Iterator[Record]:
        """Every record of every segment in log order, torn tails cut off (see module doc);
        raises `LogDamaged` for unreadable records in the middle of a segment."""
        for number in self.segments():
            yield from self._scan_segment(number)

    def _scan_segment(self, number: int) -> Iterator[Record]:
        path = self.path(number)
        blob = path.read_bytes()
        pos = 0
        while pos < len(blob):
            rec = decode_header(blob[pos:pos + HEADER_BYTES], number, pos)
            if rec is None or pos + rec.size > len(blob):
                if rec is None and _valid_header_after(blob, pos + 1, number):
                    raise LogDamaged(f"segment {path.name}: unreadable record at offset {pos} "
                                     "before valid ones; its blocks are unknown")
                self._truncate(number, pos)
                return
            data = blob[pos + HEADER_BYTES:pos + rec.size]
            if hashlib.sha256(data).digest() != rec.digest:
                rec = Record(rec.kind, rec.block_id, rec.seq, rec.token, rec.length,
                             rec.digest, number, pos, damaged=True)
            yield rec
            pos += rec.size

    def _truncate(self, number: int, offset: int) -> None:
        os.truncate(self.path(number), offset)
        self.truncated.append((number, offset))

    def read(self, rec: Record) -> bytes:
        """The data of `rec` as stored (the caller checks the digest)."""
        fd = self._fd(rec.segment)
        data = os.pread(fd, rec.length, rec.offset + HEADER_BYTES)
        if len(data) != rec.length:
            raise OSError(f"segment {rec.segment:08x} ends inside a record")
        return data

    def read_raw(self, rec: Record) -> bytes:
        """Header and data of `rec`, byte for byte."""
        return os.pread(self._fd(rec.segment), rec.size, rec.offset)

    def _fd(self, number: int) -> int:
        fd = self._fds.get(number)
        if fd is None:
            flags = os.O_RDWR | os.O_APPEND if number == self._active else os.O_RDONLY
            fd = os.open(self.path(number), flags | os.O_CLOEXEC)
            self._fds[number] = fd
        return fd

    # -- writing ---------------------------------------------------------------------------

    def append(self, header: bytes, data: bytes) -> tuple[int, int]:
        """Append one record (header + data); return (segment, offset of its header)."""
        size = len(header) + len(data)
        if size > self.segment_bytes:
            raise ValueError("record larger than a segment")
        if self._active is None or self._active_size + size > self.segment_bytes:
            self._roll()
        assert self._active is not None
        fd = self._fds[self._active]
        offset = self._active_size
        written = os.write(fd, header + data)
        if written != size:  # a short write (disk full): cut it off so no torn record stays
            os.ftruncate(fd, offset)
            raise OSError("short write to the block log")
        self._active_size += size
        if self.sync:
            os.fsync(fd)
        return self._active, offset

    def _roll(self) -> None:
        """Seal the active segment and start the next one."""
        if self._active is not None:
            os.fsync(self._fds[self._active])  # a sealed segment is complete on disk
            self._close(self._active)
        numbers = self.segments()
        number = (numbers[-1] + 1) if numbers else 1
        fd = os.open(self.path(number), os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL
                     | os.O_CLOEXEC, 0o600)
        self._active, self._active_size = number, 0
        self._fds[number] = fd
        if self.sync:
            _fsync_dir(self.root)

    def seal(self) -> None:
        """Make the next append start a new segment (the current one is fsynced)."""
        if self._active is not None:
            os.fsync(self._fds[self._active])
            self._close(self._active)
            self._active = None

    def flush(self) -> None:
        """fsync the active segment and the folder."""
        if self._active is not None:
            os.fsync(self._fds[self._active])
        _fsync_dir(self.root)

    def remove(self, number: int) -> None:
        """Delete segment `number` (never the active one)."""
        if number == self._active:
            raise ValueError("cannot remove the active segment")
        self._close(number)
        self.path(number).unlink(missing_ok=True)

    def _close(self, number: int) -> None:
        fd = self._fds.pop(number, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """fsync what was appended and close every file."""
        with contextlib.suppress(OSError):
            self.seal()
        for number in list(self._fds):
            self._close(number)


def _valid_header_after(blob: bytes, start: int, number: int) -> bool:
    """True when a valid record header starts anywhere in `blob` at or after `start`."""
    pos = blob.find(MAGIC, start)
    while pos != -1:
        if decode_header(blob[pos:pos + HEADER_BYTES], number, pos) is not None:
            return True
        pos = blob.find(MAGIC, pos + 1)
    return False
