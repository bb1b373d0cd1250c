"""agents.sso.lookup (verified local -> neighbours -> origin) and agents.sso.workload."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from agents.sso.blocks import BlockIntegrityError, decompose
from agents.sso.cache import BlockCache, Granularity, Policy
from agents.sso.lookup import Source, resolve
from agents.sso.workload import Catalog, file_bytes, file_id_of, sim_manifest, zipf_requests

DATA = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(8))   # 256 bytes
MAN, BLOCKS = decompose("f", DATA, block_size=64)


def store_fetcher(store: dict[str, bytes], calls: list[str], name: str):  # type: ignore[no-untyped-def]
    def fetch(file_id: str, digest: str, index: int) -> bytes | None:
        calls.append(name)
        return store.get(digest)
    return fetch


def test_corrupt_neighbour_rejected_and_refetched_from_origin() -> None:
    d = MAN.blocks[2]
    calls: list[str] = []
    evil = store_fetcher({d: b"\x00" * 64}, calls, "n1")
    empty = store_fetcher({}, calls, "n2")
    origin = store_fetcher(BLOCKS, calls, "origin")
    cache = BlockCache(1024, Policy.LRU, Granularity.BLOCK, 64)
    r = resolve("f", 2, d, cache, [("n1", evil), ("n2", empty)], origin, manifest=MAN)
    assert r.data == DATA[128:192]
    assert r.source is Source.ORIGIN and r.rejected_corrupt == 1
    assert r.tried == ["local", "n1", "n2", "origin"] == ["local", *calls]
    # admitted after verification: the next lookup is local and asks nobody
    r2 = resolve("f", 2, d, cache, [("n1", evil)], origin, manifest=MAN)
    assert r2.source is Source.LOCAL and r2.data == DATA[128:192] and calls.count("n1") == 1
    assert cache.stats().requests == 2 and cache.stats().hits == 1


def test_valid_neighbour_copy_used_before_origin() -> None:
    d = MAN.blocks[0]
    calls: list[str] = []
    cache = BlockCache(1024, Policy.LRU, Granularity.BLOCK, 64)
    r = resolve("f", 0, d, cache, [("n1", store_fetcher(BLOCKS, calls, "n1"))],
                store_fetcher(BLOCKS, calls, "origin"))
    assert r.source is Source.NEIGHBOUR and r.source_name == "n1" and calls == ["n1"]
    assert r.data == DATA[:64]
    assert cache.peek(d) is None                # no manifest given: nothing admitted


def test_only_corrupt_copies_raise_integrity_error() -> None:
    d = MAN.blocks[1]
    bad = {d: b"x" * 64}
    calls: list[str] = []
    cache = BlockCache(1024, Policy.LRU, Granularity.BLOCK, 64)
    with pytest.raises(BlockIntegrityError, match=r"no valid copy, 2 corrupt"):
        resolve("f", 1, d, cache, [("n1", store_fetcher(bad, calls, "n1"))],
                store_fetcher(bad, calls, "origin"), manifest=MAN)
    assert cache.peek(d) is None and len(cache) == 0


def test_no_source_raises_lookup_error_naming_block() -> None:
    def broken(file_id: str, digest: str, index: int) -> bytes | None:
        raise ConnectionError("unreachable")
    cache = BlockCache(1024, Policy.LRU, Granularity.BLOCK, 64)
    with pytest.raises(LookupError, match=r"block 3 of 'f'.*n1: failed.*origin: not held"):
        resolve("f", 3, MAN.blocks[3], cache, [("n1", broken)], lambda f, d, i: None)


def test_zipf_requests_deterministic_and_skewed() -> None:
    cat = Catalog(n_files=50, blocks_per_file=4, block_size=8)
    a = zipf_requests(cat, 20000, alpha=1.0, seed=7, block_alpha=1.0)
    assert a == zipf_requests(cat, 20000, alpha=1.0, seed=7, block_alpha=1.0)
    assert a != zipf_requests(cat, 20000, alpha=1.0, seed=8, block_alpha=1.0)
    files = Counter(r.file_id for r in a)
    # Zipf(1) over 50 ranks: P(rank 1) = 1/H_50, P(rank 2) = 1/(2 H_50); H_50 = 4.4992
    h50 = sum(1 / k for k in range(1, 51))
    assert files[file_id_of(cat, 0)] / 20000 == pytest.approx(1 / h50, abs=0.015)
    assert files[file_id_of(cat, 1)] / 20000 == pytest.approx(0.5 / h50, abs=0.015)
    blocks = Counter(r.index for r in a)
    h4 = 1 + 1 / 2 + 1 / 3 + 1 / 4
    assert blocks[0] / 20000 == pytest.approx(1 / h4, abs=0.015)
    assert blocks[3] / 20000 == pytest.approx(0.25 / h4, abs=0.015)
    uniform = Counter(r.index for r in zipf_requests(cat, 20000, 1.0, 7, block_alpha=0.0))
    assert all(abs(n / 20000 - 0.25) < 0.02 for n in uniform.values())


def test_file_bytes_deterministic_and_manifest_sizes() -> None:
    cat = Catalog(n_files=3, blocks_per_file=4, block_size=100)
    fid = file_id_of(cat, 2)
    data = file_bytes(cat, fid, seed=1)
    assert len(data) == 400 and data == file_bytes(cat, fid, seed=1)
    assert data != file_bytes(cat, fid, seed=2) and data != file_bytes(cat, file_id_of(cat, 1), 1)
    m = sim_manifest(cat, fid)
    assert m.size == 400 and len(m.blocks) == 4 and m.block_len(3) == 100
    with pytest.raises(IndexError):
        file_id_of(cat, 3)
