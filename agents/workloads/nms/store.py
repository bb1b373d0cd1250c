"""The NMS's block store: fixed-size blocks kept in the append-only segment log of `segments`.

Standard library only (copied into the NMS image with the server).

``<data>/segments/*.seg`` holds every block (header with id, sequence number, ALLOC token, length
and SHA-256, then the data), a few 4 MiB files instead of one file per block: ``docker commit``,
the layer's tar + gzip and the destination's extraction pay per file, so migrating 64 MB of
blocks moves ~17 files instead of ~24 000. The data stays in the container's filesystem (no
volume), so ``docker commit`` carries every acknowledged block as before.

* ALLOC appends an 80-byte "zero-filled block" record, not a block of zeros, so writing a block
  that was just allocated leaves no block-sized garbage behind.
* The index (block id -> newest record; ALLOC token -> block id) lives in memory and is rebuilt
  on start by scanning and checking every record (`segments.SegmentLog.scan`).
* A read checks the data against the record's SHA-256 and refuses a block that fails
  (``INTERNAL``, "failed its integrity check") instead of returning wrong bytes.
* Durability as before: with ``sync`` every acknowledged ALLOC / WRITE / FREE is fsynced before
  the reply; without it the data is in the page cache (what ``docker commit`` reads) and
  `BlockStore.close` on stop fsyncs the log's files and folder.
* Garbage (superseded and freed records) is reclaimed by `BlockStore.compact`: on request, or
  by itself once garbage exceeds both the live data and ``compact_min_garbage`` (64 MiB by
  default), so the log never holds more than 2 x live + ``compact_min_garbage`` + one segment.
* A data folder in the old layout (``blocks/<16 hex id>`` files, ``allocs/`` token markers) is
  imported into the log on start, then removed (`BlockStore._import_legacy`).

The server's confidentiality is unchanged: it stores the bytes the client sends (fuxfs' blocks)
exactly as before, only packed differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import secrets
import threading
from pathlib import Path

from .protocol import (
    ALLOC_TOKEN_BYTES,
    DEFAULT_BLOCK_SIZE,
    Op,
    ProtocolError,
    Request,
    Response,
    StatInfo,
    Status,
    read_u64,
    u64,
)
from .segments import (
    DEFAULT_SEGMENT_BYTES,
    HEADER_BYTES,
    KIND_DATA,
    KIND_FREE,
    KIND_ZERO,
    NO_TOKEN,
    LogDamaged,
    Record,
    SegmentLog,
    encode_header,
)

log = logging.getLogger("nms.store")

DEFAULT_COMPACT_MIN_GARBAGE = 64 << 20

__all__ = ["BlockError", "BlockStore", "LogDamaged"]


class BlockError(Exception):
    """A request the store refuses, with the status to answer."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


class BlockStore:
    """Fixed-size blocks in a segment log; safe for concurrent use by connection threads
    (one lock around every operation)."""

    def __init__(self, root: Path, block_size: int = DEFAULT_BLOCK_SIZE,
                 max_blocks: int = 65536, sync: bool = False,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 compact_min_garbage: int = DEFAULT_COMPACT_MIN_GARBAGE) -> None:
        if block_size <= 0 or block_size > 1 << 20:
            raise ValueError("block size must be 1..1048576 bytes")
        if segment_bytes < HEADER_BYTES + block_size:
            raise ValueError("a segment must hold at least one block record")
        self.root = root
        self.block_size = block_size
        self.max_blocks = max_blocks
        self.sync = sync
        self.compact_min_garbage = compact_min_garbage
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self.log = SegmentLog(root / "segments", segment_bytes, sync)
        self._index: dict[int, Record] = {}
        self._tokens: dict[bytes, int] = {}
        self._seq = 0
        self._live_bytes = 0
        self._rebuild()
        self._log_bytes = self.log.bytes_on_disk()
        self._import_legacy()

    # -- index -----------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Rebuild the index from the log: per block, the record with the highest sequence."""
        newest: dict[int, Record] = {}
        for rec in self.log.scan():
            self._seq = max(self._seq, rec.seq)
            old = newest.get(rec.block_id)
            if old is None or rec.seq > old.seq:
                newest[rec.block_id] = rec
        for bid, rec in newest.items():
            if rec.kind != KIND_FREE:
                self._set(bid, rec)
        for number, offset in self.log.truncated:
            log.warning("segment %08x: torn record at offset %d cut off", number, offset)
        damaged = sum(1 for r in self._index.values() if r.damaged)
        if damaged:
            log.error("%d blocks failed their integrity check; reads of them are refused", damaged)

    def _set(self, bid: int, rec: Record) -> None:
        old = self._index.get(bid)
        if old is not None:
            self._live_bytes -= old.size
            if self._tokens.get(old.token) == bid:
                del self._tokens[old.token]
        self._index[bid] = rec
        self._live_bytes += rec.size
        if rec.token != NO_TOKEN:
            self._tokens[rec.token] = bid

    def _drop(self, bid: int) -> None:
        old = self._index.pop(bid)
        self._live_bytes -= old.size
        if self._tokens.get(old.token) == bid:
            del self._tokens[old.token]

    def _append(self, kind: int, bid: int, token: bytes, data: bytes) -> Record:
        self._seq += 1
        header = encode_header(kind, bid, self._seq, token, data)
        segment, offset = self.log.append(header, data)
        self._log_bytes += len(header) + len(data)
        return Record(kind, bid, self._seq, token, len(data),
                      hashlib.sha256(data).digest(), segment, offset)

    # -- the operations --------------------------------------------------------------------

    def count(self) -> int:
        """Blocks allocated."""
        return len(self._index)

    def allocate(self, token: bytes) -> int:
        """A new zero-filled block (the same one again for a token already used)."""
        if len(token) != ALLOC_TOKEN_BYTES or token == NO_TOKEN:
            raise BlockError(Status.BAD_REQUEST, "ALLOC token must be 16 bytes, not all zero")
        with self._lock:
            known = self._tokens.get(token)
            if known is not None:
                return known
            if self.count() >= self.max_blocks:
                raise BlockError(Status.NO_SPACE, "no free blocks")
            while True:
                bid = secrets.randbits(63) or 1
                if bid not in self._index:
                    break
            self._set(bid, self._append(KIND_ZERO, bid, token, b""))
            self._maybe_compact()
            return bid

    def write(self, block_id: int, data: bytes) -> None:
        """Replace the content of an allocated block."""
        if len(data) != self.block_size:
            raise BlockError(Status.BAD_REQUEST, f"WRITE needs exactly {self.block_size} bytes")
        with self._lock:
            old = self._index.get(block_id)
            if old is None:
                raise BlockError(Status.NOT_FOUND, f"block {block_id:x} is not allocated")
            self._set(block_id, self._append(KIND_DATA, block_id, old.token, data))
            self._maybe_compact()

    def read(self, block_id: int) -> bytes:
        """The content of an allocated block, checked against its SHA-256."""
        with self._lock:
            rec = self._index.get(block_id)
            if rec is None:
                raise BlockError(Status.NOT_FOUND, f"block {block_id:x} is not allocated")
            if rec.kind == KIND_ZERO:
                return bytes(self.block_size)
            data = self.log.read(rec)
        if rec.damaged or hashlib.sha256(data).digest() != rec.digest:
            log.error("block %x failed its integrity check (segment %08x offset %d)",
                      block_id, rec.segment, rec.offset)
            raise BlockError(Status.INTERNAL, f"block {block_id:x} failed its integrity check")
        return data

    def free(self, block_id: int) -> None:
        """Release a block (and its ALLOC token)."""
        with self._lock:
            if block_id not in self._index:
                raise BlockError(Status.NOT_FOUND, f"block {block_id:x} is not allocated")
            self._append(KIND_FREE, block_id, NO_TOKEN, b"")
            self._drop(block_id)
            self._maybe_compact()

    def stat(self) -> StatInfo:
        """Block size, blocks in use, capacity."""
        return StatInfo(self.block_size, self.count(), self.max_blocks)

    # -- space -----------------------------------------------------------------------------

    def garbage_bytes(self) -> int:
        """Bytes of the log that no current block needs (superseded and freed records)."""
        return self._log_bytes - self._live_bytes

    def log_bytes(self) -> int:
        """Bytes of every segment together."""
        return self._log_bytes

    def _maybe_compact(self) -> None:
        if self.garbage_bytes() > max(self._live_bytes, self.compact_min_garbage):
            self._compact_locked()

    def compact(self) -> int:
        """Copy every current block into new segments and delete the old ones; return the
        bytes reclaimed."""
        with self._lock:
            return self._compact_locked()

    def _compact_locked(self) -> int:
        """Copy the current records unchanged (sequence numbers included) into new segments,
        fsync them, then delete the old segments oldest first (see `segments`)."""
        before = self._log_bytes
        old = self.log.segments()
        self.log.seal()
        moved = {}
        for bid, rec in sorted(self._index.items(), key=lambda kv: kv[1].seq):
            raw = self.log.read_raw(rec)
            if len(raw) != rec.size:
                raise OSError(f"segment {rec.segment:08x} ends inside a record")
            segment, offset = self.log.append(raw[:HEADER_BYTES], raw[HEADER_BYTES:])
            moved[bid] = dataclasses.replace(rec, segment=segment, offset=offset)
        self.log.flush()
        self._index.update(moved)
        for number in old:
            self.log.remove(number)
        self.log.flush()
        self._log_bytes = self.log.bytes_on_disk()
        log.info("compacted the block log: %d -> %d bytes", before, self._log_bytes)
        return before - self._log_bytes

    def close(self) -> None:
        """fsync the log (its active segment and folder) and close it."""
        with self._lock:
            self.log.flush()
            self.log.close()

    # -- the old layout --------------------------------------------------------------------

    def _import_legacy(self) -> None:
        """Move blocks of the one-file-per-block layout (``blocks/``, ``allocs/``) into the
        log, fsync it, then delete the old files (a crash in between imports them again:
        the newer copy wins and the first becomes garbage)."""
        blocks, allocs = self.root / "blocks", self.root / "allocs"
        if not blocks.is_dir():
            return
        files = sorted(p for p in blocks.iterdir() if ".tmp" not in p.name)
        imported = 0
        for path in files:
            try:
                bid = int(path.name, 16)
            except ValueError:
                continue
            token = NO_TOKEN
            with contextlib.suppress(OSError, ValueError):
                token = bytes.fromhex((allocs / f"{path.name}.block").read_text())
                if len(token) != ALLOC_TOKEN_BYTES:
                    token = NO_TOKEN
            self._set(bid, self._append(KIND_DATA, bid, token, path.read_bytes()))
            imported += 1
        self.log.flush()
        for d in (blocks, allocs):
            if d.is_dir():
                for p in d.iterdir():
                    p.unlink(missing_ok=True)
                d.rmdir()
        if imported:
            log.info("imported %d blocks of the one-file-per-block layout", imported)

    # -- the protocol ----------------------------------------------------------------------

    def execute(self, req: Request) -> Response:
        """Run one request; every failure becomes a status, never an exception."""
        try:
            if req.op is Op.ALLOC:
                return Response(Status.OK, req.request_id, u64(self.allocate(req.args)))
            if req.op is Op.WRITE:
                self.write(read_u64(req.args), req.args[8:])
                return Response(Status.OK, req.request_id)
            if req.op is Op.READ:
                if len(req.args) != 8:
                    raise BlockError(Status.BAD_REQUEST, "READ takes a block id")
                return Response(Status.OK, req.request_id, self.read(read_u64(req.args)))
            if req.op is Op.FREE:
                if len(req.args) != 8:
                    raise BlockError(Status.BAD_REQUEST, "FREE takes a block id")
                self.free(read_u64(req.args))
                return Response(Status.OK, req.request_id)
            if req.op is Op.STAT:
                return Response(Status.OK, req.request_id, self.stat().encode())
            return Response(Status.OK, req.request_id)  # PING
        except BlockError as err:
            return Response(err.status, req.request_id, str(err).encode())
        except ProtocolError as err:
            return Response(Status.BAD_REQUEST, req.request_id, str(err).encode())
        except OSError as err:
            log.error("storage error: %s", err)
            return Response(Status.INTERNAL, req.request_id, b"storage error")
