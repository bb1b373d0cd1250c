"""An edge's block cache: block caching (BC) or full-file caching (FFC), LRU or LFU
(seed 004, section 8.2).

* BC: the unit of caching is one block, named by its digest. A request for a block hits when
  that block is cached.
* FFC: the unit of caching is the whole file. A request for a block hits only when the whole
  file is cached; after a miss the caller fetches the whole file and admits each block. The
  file's full size is reserved (evicting by policy) when its first block is admitted, and the
  file counts as cached once every block has been admitted.
* LRU evicts the unit used least recently (a hit or an admission is a use). LFU evicts the unit
  with the fewest hits since it was admitted (admission counts one); ties go to the unit admitted
  earliest ("by age").
* A unit larger than the whole capacity is not cached. The hit ratio is eq. 16:
  hits / requests, one request per `lookup`.

Size-only mode: admitting with `data=None` stores only sizes (the simulator's mode); `lookup`
then returns True on a hit. Bytes given to `admit` are verified against the manifest's digest
first, so a cache never holds a corrupt block.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from agents.common.compat import StrEnum
from agents.sso.blocks import BLOCK_SIZE_DEFAULT, FileManifest, verify_block


class Policy(StrEnum):
    """Which unit is evicted to make room."""

    LRU = "lru"
    LFU = "lfu"


class Granularity(StrEnum):
    """The unit of caching: one block (BC) or one whole file (FFC)."""

    BLOCK = "bc"
    FILE = "ffc"


@dataclass
class CacheStats:
    """Counters of one cache since it was created or its stats were last reset."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes_used: int = 0
    capacity_bytes: int = 0

    @property
    def hit_ratio(self) -> float:
        """Eq. 16: hits / requests (0.0 when there was no request)."""
        return self.hits / self.requests if self.requests else 0.0

    @property
    def miss_ratio(self) -> float:
        """1 - hit_ratio (0.0 when there was no request)."""
        return 1.0 - self.hit_ratio if self.requests else 0.0


@dataclass
class _Unit:
    key: str
    size: int
    seq: int                      # admission order: LFU's tie-break ("age")
    freq: int = 1
    data: bytes | None = None     # BC: the block (None in size-only mode)
    digests: tuple[str, ...] = ()  # FFC: the file's blocks
    blocks: dict[int, bytes | None] = field(default_factory=dict)  # FFC: admitted so far

    @property
    def complete(self) -> bool:
        return len(self.blocks) == len(self.digests)


class BlockCache:
    """A bounded cache of blocks (BC) or whole files (FFC) with LRU or LFU eviction."""

    def __init__(self, capacity_bytes: int, policy: Policy, granularity: Granularity,
                 block_size: int = BLOCK_SIZE_DEFAULT) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {block_size}")
        self.capacity_bytes = capacity_bytes
        self.policy = Policy(policy)
        self.granularity = Granularity(granularity)
        self.block_size = block_size
        self._units: OrderedDict[str, _Unit] = OrderedDict()  # LRU order: oldest use first
        self._heap: list[tuple[int, int, str]] = []            # LFU: (freq, seq, key), lazy
        self._by_digest: dict[str, set[str]] = {}              # FFC: digest -> file ids
        self._seq = 0
        self._used = 0
        self._stats = CacheStats(capacity_bytes=capacity_bytes)

    # -- queries ---------------------------------------------------------------------------

    def lookup(self, file_id: str, index: int, digest: str) -> bytes | Literal[True] | None:
        """Count one request for block `index` of `file_id` (named `digest`): on a hit return
        the stored bytes (True in size-only mode) and mark the unit used; on a miss None."""
        self._stats.requests += 1
        unit = self._hit_unit(file_id, index, digest)
        if unit is None:
            self._stats.misses += 1
            return None
        self._stats.hits += 1
        self._use(unit)
        data = unit.data if self.granularity is Granularity.BLOCK else unit.blocks[index]
        return True if data is None else data

    def _hit_unit(self, file_id: str, index: int, digest: str) -> _Unit | None:
        if self.granularity is Granularity.BLOCK:
            return self._units.get(digest)
        unit = self._units.get(file_id)
        if (unit is None or not unit.complete or not 0 <= index < len(unit.digests)
                or unit.digests[index] != digest):
            return None
        return unit

    def peek(self, digest: str) -> bytes | None:
        """The cached bytes of block `digest` for a neighbour (no request counted, no use
        recorded); None when absent or stored size-only. FFC serves complete files only."""
        if self.granularity is Granularity.BLOCK:
            unit = self._units.get(digest)
            return unit.data if unit is not None else None
        for fid in self._by_digest.get(digest, ()):
            unit = self._units[fid]
            if unit.complete:
                for i, d in enumerate(unit.digests):
                    if d == digest and unit.blocks[i] is not None:
                        return unit.blocks[i]
        return None

    def holds(self, digest: str) -> bool:
        """Whether block `digest` is cached and servable (as `peek`, but size-only too)."""
        if self.granularity is Granularity.BLOCK:
            return digest in self._units
        return any(self._units[fid].complete for fid in self._by_digest.get(digest, ()))

    def has_file(self, file_id: str) -> bool:
        """FFC: whether the whole file is cached; BC: always False (no file units)."""
        unit = self._units.get(file_id) if self.granularity is Granularity.FILE else None
        return unit is not None and unit.complete

    def keys(self) -> list[str]:
        """The cached units' keys (BC: digests, FFC: file ids), least recently used first."""
        return list(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def stats(self) -> CacheStats:
        """A snapshot of the counters (bytes_used includes FFC files still being admitted)."""
        s = self._stats
        return CacheStats(s.requests, s.hits, s.misses, s.evictions, self._used,
                          self.capacity_bytes)

    def reset_stats(self) -> None:
        """Zero the request/hit/miss/eviction counters (the contents stay)."""
        self._stats = CacheStats(capacity_bytes=self.capacity_bytes)

    # -- admission -------------------------------------------------------------------------

    def admit(self, manifest: FileManifest, index: int, data: bytes | None) -> None:
        """Cache block `index` of `manifest` after a miss (`data` None = size-only). Bytes are
        verified against the manifest first (`BlockIntegrityError`). BC admits the block; FFC
        admits it into the file's unit, reserving the whole file's size."""
        if not 0 <= index < len(manifest.blocks):
            raise IndexError(f"file {manifest.file_id!r} has no block {index} "
                             f"({len(manifest.blocks)} blocks)")
        digest = manifest.blocks[index]
        if data is not None:
            verify_block(digest, data)
            size = len(data)
        else:
            size = min(manifest.block_size, manifest.size - index * manifest.block_size)
        if self.granularity is Granularity.BLOCK:
            self._admit_block(digest, size, data)
        else:
            self._admit_file_block(manifest, index, data)

    def _admit_block(self, digest: str, size: int, data: bytes | None) -> None:
        unit = self._units.get(digest)
        if unit is not None:
            if unit.data is None and data is not None:
                unit.data = data
            return
        if size > self.capacity_bytes:
            return
        self._make_room(size)
        self._insert(_Unit(digest, size, self._next_seq(), data=data))

    def _admit_file_block(self, manifest: FileManifest, index: int, data: bytes | None) -> None:
        unit = self._units.get(manifest.file_id)
        if unit is not None and (unit.digests != manifest.blocks or unit.size != manifest.size):
            self._remove(unit)               # a new version of the file replaces the old unit
            unit = None
        if unit is None:
            if manifest.size > self.capacity_bytes:
                return
            self._make_room(manifest.size)
            unit = _Unit(manifest.file_id, manifest.size, self._next_seq(),
                         digests=manifest.blocks)
            self._insert(unit)
            for d in set(manifest.blocks):
                self._by_digest.setdefault(d, set()).add(manifest.file_id)
        else:
            self._units.move_to_end(unit.key)
        if unit.blocks.get(index) is None:
            unit.blocks[index] = data

    # -- internals -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _insert(self, unit: _Unit) -> None:
        self._units[unit.key] = unit
        self._used += unit.size
        if self.policy is Policy.LFU:
            heapq.heappush(self._heap, (unit.freq, unit.seq, unit.key))

    def _use(self, unit: _Unit) -> None:
        self._units.move_to_end(unit.key)
        if self.policy is Policy.LFU:
            unit.freq += 1
            heapq.heappush(self._heap, (unit.freq, unit.seq, unit.key))
            if len(self._heap) > 4 * len(self._units) + 64:   # drop stale entries: bounded
                self._heap = [(u.freq, u.seq, u.key) for u in self._units.values()]
                heapq.heapify(self._heap)

    def _victim(self) -> _Unit:
        if self.policy is Policy.LRU:
            return next(iter(self._units.values()))
        while True:
            freq, seq, key = heapq.heappop(self._heap)
            unit = self._units.get(key)
            if unit is not None and unit.freq == freq and unit.seq == seq:
                return unit

    def _make_room(self, size: int) -> None:
        while self._units and self._used + size > self.capacity_bytes:
            self._remove(self._victim())
            self._stats.evictions += 1

    def _remove(self, unit: _Unit) -> None:
        del self._units[unit.key]
        self._used -= unit.size
        for d in set(unit.digests):
            owners = self._by_digest.get(d)
            if owners is not None:
                owners.discard(unit.key)
                if not owners:
                    del self._by_digest[d]
