"""The caching workload: a catalog of equal-sized files and Zipf-popular block requests
(seed 004, sections 4 and 8.2: "a block answers a single-file query").

File ranks are popularity ranks: `file_id_of(catalog, 0)` is the most popular file. Every draw
uses `random.Random(seed)`, so the same arguments give the same sequence on every machine (the
lab and the simulator replay the same requests).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass

from agents.sso.blocks import FileManifest

#: the largest file `file_bytes` generates (the lab's files; the simulator stays size-only)
FILE_BYTES_MAX = 256 * 1024 * 1024


@dataclass(frozen=True)
class Catalog:
    """`n_files` files of `blocks_per_file` blocks of `block_size` bytes each."""

    n_files: int
    blocks_per_file: int
    block_size: int

    def __post_init__(self) -> None:
        for name in ("n_files", "blocks_per_file", "block_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Catalog.{name} must be > 0, got {getattr(self, name)}")

    @property
    def file_size(self) -> int:
        """Bytes in one file."""
        return self.blocks_per_file * self.block_size

    @property
    def total_bytes(self) -> int:
        """Bytes in the whole catalog."""
        return self.n_files * self.file_size


@dataclass(frozen=True)
class BlockRequest:
    """One query: block `index` of file `file_id`."""

    file_id: str
    index: int


def file_id_of(catalog: Catalog, rank: int) -> str:
    """The id of the file with popularity rank `rank` (0 = most popular)."""
    if not 0 <= rank < catalog.n_files:
        raise IndexError(f"rank {rank} outside the catalog's {catalog.n_files} files")
    return f"file-{rank:06d}"


def zipf_cum_weights(n: int, alpha: float) -> list[float]:
    """Cumulative Zipf weights 1/k**alpha, k = 1..n (unnormalised, for random.choices)."""
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return list(itertools.accumulate(1.0 / k ** alpha for k in range(1, n + 1)))


def zipf_requests(catalog: Catalog, n_requests: int, alpha: float, seed: int,
                  block_alpha: float = 1.0) -> list[BlockRequest]:
    """`n_requests` block requests: the file by Zipf(alpha) over file ranks, the block within it
    by Zipf(block_alpha) over block indices (block 0 the most asked for). Deterministic."""
    if n_requests < 0:
        raise ValueError(f"n_requests must be >= 0, got {n_requests}")
    rng = random.Random(seed)
    files = rng.choices(range(catalog.n_files),
                        cum_weights=zipf_cum_weights(catalog.n_files, alpha), k=n_requests)
    blocks = rng.choices(range(catalog.blocks_per_file),
                         cum_weights=zipf_cum_weights(catalog.blocks_per_file, block_alpha),
                         k=n_requests)
    ids = [file_id_of(catalog, r) for r in range(catalog.n_files)] if n_requests else []
    return [BlockRequest(ids[f], b) for f, b in zip(files, blocks, strict=True)]


def file_bytes(catalog: Catalog, file_id: str, seed: int) -> bytes:
    """Deterministic content of `file_id` (SHAKE-256 of seed and id): the lab's files."""
    if catalog.file_size > FILE_BYTES_MAX:
        raise ValueError(f"file size {catalog.file_size} exceeds {FILE_BYTES_MAX} bytes: "
                         "use size-only manifests (sim_manifest) at this scale")
    return hashlib.shake_256(f"edgeferry-sso:{seed}:{file_id}".encode()).digest(
        catalog.file_size)


def sim_manifest(catalog: Catalog, file_id: str) -> FileManifest:
    """A size-only manifest for the simulator: synthetic block names `sim:<file>:<i>` (not
    hashes; nothing is verified in size-only mode) and the catalog's sizes."""
    return FileManifest(file_id, catalog.file_size,
                        tuple(f"sim:{file_id}:{i}" for i in range(catalog.blocks_per_file)),
                        catalog.block_size)
