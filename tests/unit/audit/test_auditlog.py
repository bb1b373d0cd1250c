"""The append-only audit log: chain, fsync-before-return, tamper and truncation detection."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agents.audit.auditlog import AuditLog, AuditLogError, load_or_create_key


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "log" / "audit.jsonl", tmp_path / "keys" / "audit.key"


def _write(paths, n: int) -> AuditLog:
    (paths[1].parent).mkdir(exist_ok=True)
    log = AuditLog.open(*paths)
    for i in range(n):
        log.append({"kind": "decision", "i": i, "permit": i % 2 == 0})
    return log


def test_append_chain_and_reopen(paths):
    log = _write(paths, 5)
    assert log.length == 5 and log.verify().ok
    log.close()
    again = AuditLog.open(*paths)
    assert again.length == 5
    entry = again.append({"kind": "decision", "i": 5})
    assert entry.seq == 6
    assert [e.entry["i"] for e in again.entries()] == [0, 1, 2, 3, 4, 5]
    assert [e.seq for e in again.entries(start=5, limit=1)] == [5]
    again.close()
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(paths[1].stat().st_mode) == 0o600
    with pytest.raises(AuditLogError, match="closed"):
        again.append({"kind": "late"})


def test_append_is_on_disk_before_it_returns(paths):
    log = _write(paths, 0)
    log.append({"kind": "decision", "n": 1})
    # read through a separate file description: the line is there, complete
    lines = paths[0].read_bytes().splitlines()
    assert json.loads(lines[-1])["entry"] == {"kind": "decision", "n": 1}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda ls: [ls[0], ls[1].replace(b'"permit":false', b'"permit":true'), *ls[2:]],
     "line 2 was modified"),
    (lambda ls: [ls[0], *ls[2:]], "line 2 breaks the chain"),
    (lambda ls: [ls[1], ls[0], *ls[2:]], "line 1 breaks the chain"),
    (lambda ls: [*ls[:2], ls[1], *ls[2:]], "line 3 breaks the chain"),
    (lambda ls: ls[:3], "truncated: the log has 3 entries but the head records 5"),
    (lambda ls: [], "truncated: the log has 0 entries"),
    (lambda ls: [*ls[:4], b"not json\n"], "line 5 is not a log record"),
])
def test_tampering_is_detected(paths, mutate, problem):
    _write(paths, 5).close()
    paths[0].write_bytes(b"".join(mutate(_lines(paths[0]))))
    with pytest.raises(AuditLogError, match=problem):
        AuditLog.open(*paths)


def test_forged_line_with_recomputed_sha_is_rejected(paths):
    import hashlib
    _write(paths, 3).close()
    lines = _lines(paths[0])
    rec = json.loads(lines[2])
    rec["entry"]["permit"] = not rec["entry"]["permit"]
    rec["mac"] = hashlib.sha256(json.dumps(rec["entry"]).encode()).hexdigest()  # no key
    lines[2] = json.dumps(rec).encode() + b"\n"
    paths[0].write_bytes(b"".join(lines))
    with pytest.raises(AuditLogError, match="line 3 was modified"):
        AuditLog.open(*paths)


def test_head_forgery_and_loss_are_detected(paths):
    _write(paths, 4).close()
    head = paths[0].with_name(paths[0].name + ".head")
    raw = json.loads(head.read_bytes())
    raw["seq"] = 2
    head.write_text(json.dumps(raw))
    with pytest.raises(AuditLogError, match="bad tag"):
        AuditLog.open(*paths)
    head.unlink()
    with pytest.raises(AuditLogError, match="missing"):
        AuditLog.open(*paths)


def test_wrong_key_is_detected(paths, tmp_path):
    _write(paths, 2).close()
    with pytest.raises(AuditLogError):
        AuditLog.open(paths[0], tmp_path / "other.key")


def test_torn_final_write_is_repaired_and_recorded(paths):
    _write(paths, 3).close()
    torn = b'{"seq":4,"ts":1,"prev":"ab'  # a crash mid-write: never acknowledged
    with open(paths[0], "ab") as f:
        f.write(torn)
    log = AuditLog.open(*paths)
    assert log.length == 4
    last = list(log.entries())[-1]
    assert last.entry == {"kind": "log_repaired", "dropped_torn_bytes": len(torn)}
    assert log.verify().ok


def test_verify_reports_runtime_tampering(paths):
    log = _write(paths, 3)
    lines = _lines(paths[0])
    paths[0].write_bytes(b"".join(lines[:2]))
    result = log.verify()
    assert not result.ok and "truncated" in result.problem
    with pytest.raises(AuditLogError):
        list(log.entries())


def test_key_file_rules(tmp_path):
    key_path = tmp_path / "k"
    key = load_or_create_key(key_path)
    assert len(key) == 32 and load_or_create_key(key_path) == key
    os.chmod(key_path, 0o644)
    with pytest.raises(AuditLogError, match="chmod 600"):
        load_or_create_key(key_path)
    os.chmod(key_path, 0o600)
    key_path.write_bytes(b"short")
    with pytest.raises(AuditLogError, match="32 bytes"):
        load_or_create_key(key_path)
