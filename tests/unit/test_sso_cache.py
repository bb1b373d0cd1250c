"""agents.sso.blocks and agents.sso.cache: hand-worked eviction sequences and property tests
against a naive list-based reference model (written independently of the cache's internals)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sso.blocks import (
    BlockIntegrityError,
    FileManifest,
    assemble,
    block_digest,
    decompose,
    verify_block,
)
from agents.sso.cache import BlockCache, Granularity, Policy

BS = 10


def man(fid: str, n_blocks: int = 1) -> FileManifest:
    """A size-only manifest: n full blocks of BS bytes named <fid><i>."""
    return FileManifest(fid, n_blocks * BS, tuple(f"{fid}{i}" for i in range(n_blocks)), BS)


def touch(c: BlockCache, fid: str, n_blocks: int = 1) -> bool:
    """Look block 0 of fid up; on a miss admit the whole unit. True on a hit."""
    m = man(fid, n_blocks)
    if c.lookup(fid, 0, m.blocks[0]) is not None:
        return True
    for i in range(n_blocks):
        c.admit(m, i, None)
    return False


# -- blocks ---------------------------------------------------------------------------------

def test_decompose_assemble_roundtrip_and_digests() -> None:
    data = bytes(range(256)) * 5          # 1280 bytes -> blocks of 500, 500, 280
    m, blocks = decompose("f", data, block_size=500)
    assert m.size == 1280 and len(m.blocks) == 3
    import hashlib
    assert m.blocks[2] == hashlib.sha256(data[1000:]).hexdigest()
    assert m.block_len(2) == 280
    assert assemble(m, blocks) == data


def test_assemble_refuses_corrupt_or_missing_block() -> None:
    m, blocks = decompose("f", b"a" * 100 + b"b" * 100, block_size=100)
    bad = dict(blocks)
    bad[m.blocks[1]] = b"c" * 100
    with pytest.raises(BlockIntegrityError, match="block 1"):
        assemble(m, bad)
    with pytest.raises(BlockIntegrityError, match="missing"):
        assemble(m, {m.blocks[0]: blocks[m.blocks[0]]})


def test_verify_block() -> None:
    verify_block(block_digest(b"x"), b"x")
    with pytest.raises(BlockIntegrityError, match="mismatch"):
        verify_block(block_digest(b"x"), b"y")


# -- hand-worked sequences ------------------------------------------------------------------

def test_lru_block_sequence() -> None:
    c = BlockCache(3 * BS, Policy.LRU, Granularity.BLOCK, BS)
    hits = [touch(c, k) for k in "ABCAD"]     # D evicts B (A was used at step 4)
    assert hits == [False, False, False, True, False]
    assert sorted(c.keys()) == ["A0", "C0", "D0"]
    assert not touch(c, "B")                   # B back: evicts C (least recent)
    assert c.keys() == ["A0", "D0", "B0"]
    s = c.stats()
    assert (s.requests, s.hits, s.misses, s.evictions, s.bytes_used) == (6, 1, 5, 2, 3 * BS)
    assert s.hit_ratio == pytest.approx(1 / 6)


def test_lfu_block_sequence_and_ties_by_age() -> None:
    c = BlockCache(3 * BS, Policy.LFU, Granularity.BLOCK, BS)
    for k in "ABCAAB":                          # freq A=3, B=2, C=1
        touch(c, k)
    touch(c, "D")                               # evicts C (fewest uses)
    assert sorted(c.keys()) == ["A0", "B0", "D0"]
    touch(c, "E")                               # D has freq 1: evicted
    assert sorted(c.keys()) == ["A0", "B0", "E0"]
    t = BlockCache(3 * BS, Policy.LFU, Granularity.BLOCK, BS)
    for k in "XYZYX":                           # X, Y freq 2; Z freq 1
        touch(t, k)
    touch(t, "Z")                               # Z freq 2: all tie; X admitted first
    touch(t, "W")
    assert sorted(t.keys()) == ["W0", "Y0", "Z0"]   # LRU would have evicted Y instead


def test_ffc_hit_only_when_whole_file_cached() -> None:
    c = BlockCache(3 * BS, Policy.LRU, Granularity.FILE, BS)
    m = man("A", 2)
    assert c.lookup("A", 0, "A0") is None
    c.admit(m, 0, None)
    assert c.lookup("A", 0, "A0") is None       # half the file: still a miss
    assert c.lookup("A", 1, "A1") is None
    c.admit(m, 1, None)
    assert c.lookup("A", 1, "A1") is True
    assert c.lookup("A", 0, "A0") is True
    assert c.lookup("A", 0, "B0") is None       # wrong digest for that index
    assert c.stats().bytes_used == 2 * BS
    touch(c, "B", 2)                            # 4 blocks > 3: A evicted
    assert c.keys() == ["B"] and not c.has_file("A") and c.has_file("B")
    assert c.stats().evictions == 1
    touch(c, "C", 4)                            # larger than the whole cache: not cached
    assert c.keys() == ["B"]


def test_bytes_stored_returned_and_corrupt_admission_refused() -> None:
    m, blocks = decompose("f", b"q" * 30 + b"r" * 30, block_size=30)
    c = BlockCache(100, Policy.LRU, Granularity.BLOCK, 30)
    c.admit(m, 0, blocks[m.blocks[0]])
    assert c.lookup("f", 0, m.blocks[0]) == b"q" * 30
    assert c.peek(m.blocks[0]) == b"q" * 30
    with pytest.raises(BlockIntegrityError):
        c.admit(m, 1, b"x" * 30)
    assert c.peek(m.blocks[1]) is None
    assert c.stats().requests == 1              # peek counts nothing


def test_ffc_peek_serves_complete_files_only() -> None:
    m, blocks = decompose("f", b"q" * 30 + b"r" * 30, block_size=30)
    c = BlockCache(100, Policy.LRU, Granularity.FILE, 30)
    c.admit(m, 0, blocks[m.blocks[0]])
    assert c.peek(m.blocks[0]) is None and not c.holds(m.blocks[0])
    c.admit(m, 1, blocks[m.blocks[1]])
    assert c.peek(m.blocks[0]) == b"q" * 30 and c.holds(m.blocks[1])


# -- property tests against a naive reference model ------------------------------------------

class NaiveCache:
    """List-based reference: entries [key, size, blocks_admitted, n_blocks, freq, admitted_at],
    list order = recency (front = least recently used)."""

    def __init__(self, cap: int, policy: str, file_mode: bool) -> None:
        self.cap, self.policy, self.file_mode = cap, policy, file_mode
        self.entries: list[list[object]] = []
        self.clock = 0
        self.hits = self.requests = 0

    def _find(self, key: str) -> list[object] | None:
        return next((e for e in self.entries if e[0] == key), None)

    def lookup(self, fid: str, idx: int, n_blocks: int) -> bool:
        self.requests += 1
        key = fid if self.file_mode else f"{fid}{idx}"
        e = self._find(key)
        hit = e is not None and (not self.file_mode or len(e[2]) == n_blocks)  # type: ignore[arg-type]
        if hit:
            assert e is not None
            self.hits += 1
            e[4] = int(e[4]) + 1  # type: ignore[call-overload]
            self.entries.remove(e)
            self.entries.append(e)
        return hit

    def admit(self, fid: str, idx: int, n_blocks: int) -> None:
        key = fid if self.file_mode else f"{fid}{idx}"
        size = n_blocks * BS if self.file_mode else BS
        e = self._find(key)
        if e is None:
            if size > self.cap:
                return
            while sum(int(x[1]) for x in self.entries) + size > self.cap:  # type: ignore[call-overload]
                if self.policy == "lru":
                    victim = self.entries[0]
                else:
                    victim = min(self.entries, key=lambda x: (x[4], x[5]))  # type: ignore[arg-type,return-value]
                self.entries.remove(victim)
            self.clock += 1
            e = [key, size, set(), n_blocks, 1, self.clock]
            self.entries.append(e)
        elif self.file_mode:
            self.entries.remove(e)
            self.entries.append(e)
        e[2].add(idx)  # type: ignore[attr-defined]


ops = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), st.booleans()),
               min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(ops=ops, cap_blocks=st.integers(1, 8), policy=st.sampled_from(["lru", "lfu"]),
       file_mode=st.booleans())
def test_cache_matches_naive_model(ops: list[tuple[int, int, bool]], cap_blocks: int,
                                   policy: str, file_mode: bool) -> None:
    """Every lookup result, the cached set and the hit counts equal the naive model's; the
    cache never exceeds its capacity. `partial` admits only the requested block (FFC: a file
    left half admitted must keep missing)."""
    n_blocks = 3
    gran = Granularity.FILE if file_mode else Granularity.BLOCK
    c = BlockCache(cap_blocks * BS, Policy(policy), gran, BS)
    ref = NaiveCache(cap_blocks * BS, policy, file_mode)
    seen_hits = 0
    for f, idx, partial in ops:
        fid = f"F{f}"
        m = man(fid, n_blocks)
        got = c.lookup(fid, idx, m.blocks[idx])
        want = ref.lookup(fid, idx, n_blocks)
        assert (got is not None) == want
        seen_hits += got is not None
        if got is None:
            todo = [idx] if (partial or not file_mode) else range(n_blocks)
            for i in todo:
                c.admit(m, i, None)
                ref.admit(fid, i, n_blocks)
        s = c.stats()
        assert s.bytes_used <= s.capacity_bytes
        assert sorted(c.keys()) == sorted(str(e[0]) for e in ref.entries)
    s = c.stats()
    assert s.hits == seen_hits == ref.hits and s.requests == ref.requests == len(ops)
    assert s.hit_ratio == pytest.approx(ref.hits / ref.requests)
    assert s.hits + s.misses == s.requests


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.integers(0, 9), min_size=1, max_size=80), cap=st.integers(1, 6))
def test_lru_evicts_least_recently_used(keys: list[int], cap: int) -> None:
    """Whenever a BC/LRU admission evicts, the victim is the cached key whose last use is the
    oldest (tracked here from the access sequence alone)."""
    c = BlockCache(cap * BS, Policy.LRU, Granularity.BLOCK, BS)
    last_use: dict[str, int] = {}
    for t, k in enumerate(keys):
        fid = f"K{k}"
        before = set(c.keys())
        touch(c, fid)
        evicted = before - set(c.keys())
        if evicted:
            (victim,) = evicted
            oldest = min(before, key=lambda key: last_use[key])
            assert victim == oldest
        last_use[f"{fid}0"] = t
