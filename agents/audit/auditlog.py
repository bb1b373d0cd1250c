"""Append-only, tamper-evident audit log: hash-chained JSON lines under an HMAC key.

Every line is one JSON object ``{"seq", "ts", "prev", "entry", "mac"}`` where

    mac_n = HMAC-SHA256(key, bytes.fromhex(mac_{n-1}) || canonical({"seq","ts","prev","entry"}))

and ``prev`` repeats ``mac_{n-1}`` (64 zero hex digits before the first line). ``append`` writes
the line, flushes and fsyncs it before returning, so a caller that answers only after ``append``
never answers about an unrecorded decision.

Tampering: editing, inserting, reordering or deleting a line breaks the chain (the MACs need the
key, which is a 0600 file beside the log, ideally on another volume). Truncation at a line
boundary keeps the chain valid, so a *head* file (``<log>.head``: the last seq and mac, itself
MAC'd) is rewritten atomically after every append; the log must reach the head. After a crash
the head may lag the log by the last lines (they are fsynced first): that is accepted because
extending the chain needs the key. A torn final line (a crash in the middle of a write, never
acknowledged) is cut off on open and the repair is itself logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.common.keys import KeyFileError, load_or_create_secret

KEY_BYTES = 32
GENESIS = "0" * 64
FILE_MODE = 0o600


class AuditLogError(Exception):
    """The audit log cannot be used: tampered, truncated, unreadable or its key is unsafe."""


@dataclass(frozen=True)
class LogEntry:
    seq: int
    ts: float
    entry: dict[str, Any]
    mac: str


@dataclass
class _Scan:
    seq: int = 0
    mac: str = GENESIS
    torn: int = 0
    problem: str = ""
    wanted_mac: str = ""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""  # one line; empty when ok


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def load_or_create_key(path: Path) -> bytes:
    """Read the 32-byte HMAC key (mode must be 0600 or stricter); create it if missing
    (`agents.common.keys`; refusals as AuditLogError)."""
    try:
        return load_or_create_secret(Path(path), size=KEY_BYTES, exact=True,
                                     what="audit log key")
    except KeyFileError as err:
        raise AuditLogError(str(err)) from None


class AuditLog:
    """An append-only audit log file. Thread-safe; one writer process per file."""

    def __init__(self, path: Path, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) != KEY_BYTES:
            raise AuditLogError(f"audit log key must be {KEY_BYTES} bytes")
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._seq: int = 0
        self._mac: str = GENESIS
        self._fd: int = -1
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        torn = self._open_checks()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        self._fd = fd
        if torn:
            self.append({"kind": "log_repaired", "dropped_torn_bytes": torn})

    @classmethod
    def open(cls, path: Path, key_path: Path, **kwargs: Any) -> AuditLog:
        return cls(path, load_or_create_key(key_path), **kwargs)

    # -- writing --------------------------------------------------------------------------------
    def append(self, entry: dict[str, Any]) -> LogEntry:
        """Write ``entry`` as the next line and fsync it; return what was written."""
        with self._lock:
            if self._fd < 0:
                raise AuditLogError(f"audit log {self.path} is closed")
            seq = self._seq + 1
            ts = self._clock()
            body = {"seq": seq, "ts": ts, "prev": self._mac, "entry": entry}
            mac = self._mac_of(self._mac, body)
            line = _canonical({**body, "mac": mac}) + b"\n"
            written = os.write(self._fd, line)
            if written != len(line):  # pragma: no cover - disk full / quota
                raise AuditLogError(f"short write to {self.path} ({written}/{len(line)} bytes)")
            os.fsync(self._fd)
            self._seq, self._mac = seq, mac
            self._write_head()
            return LogEntry(seq, ts, entry, mac)

    def _mac_of(self, prev: str, body: dict[str, Any]) -> str:
        return hmac.new(self._key, bytes.fromhex(prev) + _canonical(body),
                        hashlib.sha256).hexdigest()

    def _head_tag(self, seq: int, mac: str) -> str:
        return hmac.new(self._key, b"edgeferry-audit-head\x00" + _canonical([seq, mac]),
                        hashlib.sha256).hexdigest()

    def _write_head(self) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        data = _canonical({"seq": self._seq, "mac": self._mac,
                           "tag": self._head_tag(self._seq, self._mac)})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)

    # -- reading and verification ---------------------------------------------------------------
    def _read_head(self) -> tuple[int, str] | None:
        try:
            raw = json.loads(self.head_path.read_bytes())
            seq, mac, tag = int(raw["seq"]), str(raw["mac"]), str(raw["tag"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise AuditLogError(f"{self.head_path} is unreadable or corrupt") from None
        if not hmac.compare_digest(tag, self._head_tag(seq, mac)):
            raise AuditLogError(f"{self.head_path} has a bad tag: the head was forged")
        return seq, mac

    def _scan(self, want: int = 0) -> _Scan:
        """Walk the chain from the first line; remember the mac of entry ``want``."""
        scan = _Scan()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return scan
        lines = data.split(b"\n")
        scan.torn = len(lines[-1])  # bytes after the last newline: a torn, unacknowledged write
        for number, raw in enumerate(lines[:-1], start=1):
            try:
                rec = json.loads(raw)
                body = {k: rec[k] for k in ("seq", "ts", "prev", "entry")}
                got = str(rec["mac"])
            except (ValueError, KeyError, TypeError):
                scan.problem = f"line {number} is not a log record"
                return scan
            if body["seq"] != scan.seq + 1 or body["prev"] != scan.mac:
                scan.problem = f"line {number} breaks the chain (deleted, inserted or " \
                               "reordered lines)"
                return scan
            if not hmac.compare_digest(got, self._mac_of(scan.mac, body)):
                scan.problem = f"line {number} was modified (bad MAC)"
                return scan
            scan.seq, scan.mac = scan.seq + 1, got
            if scan.seq == want:
                scan.wanted_mac = got
        return scan

    def verify(self) -> VerifyResult:
        """Check the whole chain and the head; never raises for a bad log."""
        with self._lock:
            return self._verify(allow_torn=False)[0]

    def _verify(self, *, allow_torn: bool) -> tuple[VerifyResult, _Scan]:
        try:
            head = self._read_head()
        except AuditLogError as err:
            return VerifyResult(False, 0, str(err)), _Scan()
        scan = self._scan(head[0] if head else 0)
        if scan.problem:
            return VerifyResult(False, scan.seq, scan.problem), scan
        if scan.torn and not allow_torn:
            return VerifyResult(False, scan.seq,
                                f"{scan.torn} bytes after the last complete line"), scan
        if head is not None:
            head_seq, head_mac = head
            if scan.seq < head_seq:
                return VerifyResult(False, scan.seq, f"truncated: the log has {scan.seq} "
                                    f"entries but the head records {head_seq}"), scan
            if not hmac.compare_digest(scan.wanted_mac, head_mac):
                return VerifyResult(False, scan.seq,
                                    f"entry {head_seq} does not match the head"), scan
        elif scan.seq:
            return VerifyResult(False, scan.seq, f"{self.head_path} is missing"), scan
        return VerifyResult(True, scan.seq), scan

    def _open_checks(self) -> int:
        result, scan = self._verify(allow_torn=True)
        if not result.ok:
            raise AuditLogError(f"audit log {self.path} failed verification: {result.problem}; "
                                "keep it as evidence, move it aside and restart")
        if scan.torn:
            with open(self.path, "r+b") as f:
                f.truncate(self.path.stat().st_size - scan.torn)
                os.fsync(f.fileno())
        self._seq, self._mac = scan.seq, scan.mac
        if scan.seq:
            self._write_head()
        return scan.torn

    def entries(self, *, start: int = 1, limit: int | None = None) -> Iterator[LogEntry]:
        """Verified entries from ``start`` (1-based), oldest first."""
        result = self.verify()
        if not result.ok:
            raise AuditLogError(f"audit log {self.path}: {result.problem}")
        count = 0
        last = result.entries
        with open(self.path, "rb") as f:
            for raw in f:
                rec = json.loads(raw)
                if rec["seq"] < start:
                    continue
                if rec["seq"] > last:  # appended after the check: verified next time
                    return
                if limit is not None and count >= limit:
                    return
                count += 1
                yield LogEntry(rec["seq"], rec["ts"], rec["entry"], rec["mac"])

    @property
    def length(self) -> int:
        return self._seq

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
