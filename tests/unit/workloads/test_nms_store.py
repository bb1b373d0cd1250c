"""The NMS's segment-log block store: restart, torn tails, corruption, overwrites, compaction,
bounded size, the old layout. Expectations come from what the test wrote (kept in a dict) and
from tests/nms_log_reader.py, which parses the files without the store's code."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from agents.workloads.nms import segments
from agents.workloads.nms.protocol import Op, Request, Status, u64
from agents.workloads.nms.store import BlockError, BlockStore, LogDamaged
from tests.nms_log_reader import CORRUPT, live_blocks

BS = 8192
REC = 80 + BS  # a record as documented: 80-byte header + the data


def seg_files(data: Path) -> list[Path]:
    return sorted((data / "segments").glob("*.seg"))


def fill(store: BlockStore, n: int, rng: random.Random) -> dict[int, bytes]:
    want = {}
    for _ in range(n):
        bid = store.allocate(rng.randbytes(16))
        want[bid] = rng.randbytes(BS)
        store.write(bid, want[bid])
    return want


def test_restart_recovers_every_block_overwrite_and_free(tmp_path: Path) -> None:
    rng = random.Random(1)
    store = BlockStore(tmp_path, BS, segment_bytes=64 * 1024)
    token = b"t" * 16
    kept = store.allocate(token)
    want = fill(store, 40, rng)
    want[kept] = bytes(BS)  # allocated, never written: zeros
    for bid in list(want)[:10]:  # overwrites: the newest wins
        for _ in range(3):
            want[bid] = rng.randbytes(BS)
            store.write(bid, want[bid])
    freed = list(want)[10:15]
    for bid in freed:
        store.free(bid)
        del want[bid]
    store.close()

    again = BlockStore(tmp_path, BS, segment_bytes=64 * 1024)
    assert again.count() == len(want)
    assert {bid: again.read(bid) for bid in want} == want
    assert live_blocks(tmp_path, BS) == want  # the files themselves, read independently
    assert again.allocate(token) == kept  # ALLOC tokens survive too
    for bid in freed:
        with pytest.raises(BlockError) as err:
            again.read(bid)
        assert err.value.status is Status.NOT_FOUND
    # a reopened store appends to a new segment: the old ones are never modified again
    before = {p.name: p.read_bytes() for p in seg_files(tmp_path)}
    again.write(kept, rng.randbytes(BS))
    again.close()
    assert all(p.read_bytes() == before[p.name] for p in seg_files(tmp_path) if p.name in before)
    assert len(seg_files(tmp_path)) == len(before) + 1


def test_each_segment_holds_many_blocks(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, BS)  # default 4 MiB segments
    fill(store, 512, random.Random(2))  # 4 MiB of blocks
    store.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    # 512 x (ALLOC record 80 + WRITE record 80 + 8192) = 4.28 MB: two 4 MiB segments
    assert len(files) == 2
    assert sum(p.stat().st_size for p in files) == 512 * (80 + REC)


def test_a_torn_tail_is_cut_off_and_the_previous_version_served(tmp_path: Path) -> None:
    rng = random.Random(3)
    store = BlockStore(tmp_path, BS)
    want = fill(store, 5, rng)
    victim = next(iter(want))
    store.write(victim, rng.randbytes(BS))  # the last record: torn below
    store.close()
    last = seg_files(tmp_path)[-1]
    size = last.stat().st_size
    os.truncate(last, size - REC // 2)  # the write was cut short by a crash

    again = BlockStore(tmp_path, BS)
    assert {bid: again.read(bid) for bid in want} == want  # victim: its previous content
    assert last.stat().st_size == size - REC  # cut back to the last whole record
    again.write(victim, b"n" * BS)
    again.close()
    with open(seg_files(tmp_path)[-1], "ab") as fh:
        fh.write(b"NMSR\x01 half a header")  # a header torn in the middle
    third = BlockStore(tmp_path, BS)
    assert third.read(victim) == b"n" * BS
    assert live_blocks(tmp_path, BS) == {**want, victim: b"n" * BS}


def test_a_corrupt_record_is_refused_not_served(tmp_path: Path) -> None:
    rng = random.Random(4)
    store = BlockStore(tmp_path, BS)
    want = fill(store, 6, rng)
    store.close()
    seg = seg_files(tmp_path)[0]
    blob = bytearray(seg.read_bytes())
    victim = list(want)[2]
    at = blob.find(want[victim])
    blob[at + 100] ^= 0x01  # one bit of the data flipped on disk
    seg.write_bytes(bytes(blob))

    again = BlockStore(tmp_path, BS)
    with pytest.raises(BlockError) as err:
        again.read(victim)
    assert err.value.status is Status.INTERNAL and "integrity" in str(err.value)
    resp = again.execute(Request(Op.READ, 7, u64(victim)))
    assert resp.status is Status.INTERNAL and want[victim] not in resp.result
    assert all(again.read(b) == d for b, d in want.items() if b != victim)
    assert live_blocks(tmp_path, BS)[victim] == CORRUPT
    again.write(victim, want[victim])  # rewriting the block heals it
    assert again.read(victim) == want[victim]

    # corruption under a running store is caught on read as well
    other = list(want)[4]
    seg.write_bytes(seg.read_bytes().replace(want[other], bytes(BS)))
    with pytest.raises(BlockError):
        again.read(other)


def test_damage_in_the_middle_of_a_segment_refuses_to_open(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, BS)
    fill(store, 6, random.Random(5))
    store.close()
    seg = seg_files(tmp_path)[0]
    blob = bytearray(seg.read_bytes())
    blob[3 * (80 + REC) + 20] ^= 0xFF  # inside the 4th block's ALLOC header: ids unknown
    seg.write_bytes(bytes(blob))
    with pytest.raises(LogDamaged):
        BlockStore(tmp_path, BS)


def test_overwrites_stay_bounded_by_compaction(tmp_path: Path) -> None:
    rng = random.Random(6)
    seg_bytes, min_garbage = 64 * 1024, 256 * 1024
    store = BlockStore(tmp_path, BS, segment_bytes=seg_bytes, compact_min_garbage=min_garbage)
    want = fill(store, 20, rng)
    live = 20 * REC  # each block's newest record
    most = 0
    for _ in range(3000):
        bid = rng.choice(list(want))
        want[bid] = rng.randbytes(BS)
        store.write(bid, want[bid])
        sizes = [p.stat().st_size for p in seg_files(tmp_path)]
        assert max(sizes) <= seg_bytes
        most = max(most, sum(sizes))
    # 3000 x 8 KiB = 25 MB written; the log never held more than the documented bound
    assert most <= 2 * live + min_garbage + seg_bytes
    assert {bid: store.read(bid) for bid in want} == want
    store.close()
    assert live_blocks(tmp_path, BS) == want
    assert {bid: BlockStore(tmp_path, BS, segment_bytes=seg_bytes).read(bid)
            for bid in want} == want


def test_compaction_keeps_frees_even_when_a_crash_stops_it_halfway(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = BlockStore(tmp_path, BS, segment_bytes=32 * 1024)
    want = fill(store, 12, rng)
    for bid in list(want)[:4]:
        store.free(bid)
        del want[bid]
    for bid in list(want)[:4]:
        want[bid] = rng.randbytes(BS)
        store.write(bid, want[bid])
    old = {p.name: p.read_bytes() for p in seg_files(tmp_path)}
    reclaimed = store.compact()
    assert reclaimed > 0 and store.garbage_bytes() == 0
    assert {bid: store.read(bid) for bid in want} == want
    store.close()
    compacted = {p.name: p.read_bytes() for p in seg_files(tmp_path)}
    assert not set(compacted) & set(old)
    # a crash while deleting the old segments oldest first leaves any suffix of them
    names = sorted(old)
    for kept_from in range(len(names) + 1):
        shutil.rmtree(tmp_path / "segments")
        (tmp_path / "segments").mkdir()
        for name in names[kept_from:]:
            (tmp_path / "segments" / name).write_bytes(old[name])
        for name, blob in compacted.items():
            (tmp_path / "segments" / name).write_bytes(blob)
        reopened = BlockStore(tmp_path, BS, segment_bytes=32 * 1024)
        assert reopened.count() == len(want), kept_from  # no freed block came back
        assert {bid: reopened.read(bid) for bid in want} == want
        reopened.close()


def test_sync_fsyncs_before_the_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(segments.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    store = BlockStore(tmp_path, BS, sync=True)
    bid = store.allocate(b"s" * 16)
    n = len(calls)
    store.write(bid, b"d" * BS)
    assert len(calls) == n + 1
    store.free(bid)
    assert len(calls) == n + 2
    lazy = BlockStore(tmp_path / "lazy", BS, sync=False)
    n = len(calls)
    lazy.write(lazy.allocate(b"l" * 16), b"d" * BS)
    assert len(calls) == n


def test_the_one_file_per_block_layout_is_imported(tmp_path: Path) -> None:
    # the old layout, written by hand: blocks/<16 hex id>; allocs/<token hex> -> id and
    # allocs/<id>.block -> token
    rng = random.Random(8)
    (tmp_path / "blocks").mkdir()
    (tmp_path / "allocs").mkdir()
    want, tokens = {}, {}
    for _ in range(7):
        bid, token = rng.getrandbits(63) or 1, rng.randbytes(16)
        want[bid], tokens[bid] = rng.randbytes(BS), token
        (tmp_path / "blocks" / f"{bid:016x}").write_bytes(want[bid])
        (tmp_path / "allocs" / token.hex()).write_text(f"{bid:016x}")
        (tmp_path / "allocs" / f"{bid:016x}.block").write_text(token.hex())
    (tmp_path / "blocks" / f"{1:016x}.tmp123").write_bytes(b"never acknowledged")

    store = BlockStore(tmp_path, BS)
    assert {bid: store.read(bid) for bid in want} == want
    assert store.count() == len(want)
    assert all(store.allocate(tokens[bid]) == bid for bid in want)
    assert not (tmp_path / "blocks").exists() and not (tmp_path / "allocs").exists()
    store.close()
    assert live_blocks(tmp_path, BS) == want


def test_close_fsyncs_the_active_segment_and_the_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's stop no longer runs a machine-wide sync: closing a store that did not
    fsync each write must fsync its own segment file and the folder that names it."""
    synced: list[tuple[int, int]] = []  # (device, inode) of each fsynced descriptor
    real = os.fsync

    def spy(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real(fd)

    monkeypatch.setattr(segments.os, "fsync", spy)
    store = BlockStore(tmp_path, BS, sync=False)
    fill(store, 3, random.Random(5))
    assert synced == []
    store.close()
    (seg,) = seg_files(tmp_path)
    for path in (seg, tmp_path / "segments"):
        st = path.stat()
        assert (st.st_dev, st.st_ino) in synced, path
