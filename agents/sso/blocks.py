"""Files decomposed into content-addressed blocks (seed 004, section 4).

A block is named by the SHA-256 of its bytes, so any copy, wherever it came from (local cache,
a neighbour, the origin), is checked against the digest the file's manifest lists before it is
used: `verify_block` raises `BlockIntegrityError` on a mismatch and `assemble` verifies every
block it joins.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

BLOCK_SIZE_DEFAULT = 64 * 1024
#: the largest block this module accepts (bounded message and state sizes)
BLOCK_SIZE_MAX = 16 * 1024 * 1024


class BlockIntegrityError(ValueError):
    """A block's bytes do not hash to the digest they were asked for (or are missing)."""


def block_digest(data: bytes) -> str:
    """The block's name: SHA-256 of its bytes, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def verify_block(digest: str, data: bytes) -> None:
    """Raise `BlockIntegrityError` unless `data` hashes to `digest` (constant-time compare)."""
    got = block_digest(data)
    if not hmac.compare_digest(got, digest.lower()):
        raise BlockIntegrityError(
            f"block hash mismatch: expected {digest[:16]}..., got {got[:16]}... "
            f"({len(data)} bytes)")


@dataclass(frozen=True)
class FileManifest:
    """A file as the ordered digests of its blocks; every block but the last is `block_size`."""

    file_id: str
    size: int
    blocks: tuple[str, ...]
    block_size: int = BLOCK_SIZE_DEFAULT

    def block_len(self, index: int) -> int:
        """Bytes in block `index` (the last block may be short)."""
        if not 0 <= index < len(self.blocks):
            raise IndexError(f"file {self.file_id!r} has no block {index} "
                             f"({len(self.blocks)} blocks)")
        return min(self.block_size, self.size - index * self.block_size)


def _check_block_size(block_size: int) -> None:
    if not 0 < block_size <= BLOCK_SIZE_MAX:
        raise ValueError(f"block_size must be in 1..{BLOCK_SIZE_MAX}, got {block_size}")


def decompose(file_id: str, data: bytes, block_size: int = BLOCK_SIZE_DEFAULT
              ) -> tuple[FileManifest, dict[str, bytes]]:
    """Split `data` into `block_size` blocks; return the manifest and digest -> bytes.

    An empty file has no blocks. Identical blocks share one digest (one entry in the map).
    """
    _check_block_size(block_size)
    digests: list[str] = []
    store: dict[str, bytes] = {}
    for off in range(0, len(data), block_size):
        chunk = data[off:off + block_size]
        d = block_digest(chunk)
        digests.append(d)
        store.setdefault(d, chunk)
    return FileManifest(file_id, len(data), tuple(digests), block_size), store


def assemble(manifest: FileManifest, blocks: Mapping[str, bytes]) -> bytes:
    """Join the manifest's blocks in order, verifying each; raises `BlockIntegrityError` when a
    block is missing, corrupt, or the result is not `manifest.size` bytes."""
    parts: list[bytes] = []
    for i, d in enumerate(manifest.blocks):
        data = blocks.get(d)
        if data is None:
            raise BlockIntegrityError(f"file {manifest.file_id!r}: block {i} ({d[:16]}...) "
                                      "missing")
        try:
            verify_block(d, data)
        except BlockIntegrityError as err:
            raise BlockIntegrityError(f"file {manifest.file_id!r}: block {i}: {err}") from None
        parts.append(data)
    out = b"".join(parts)
    if len(out) != manifest.size:
        raise BlockIntegrityError(f"file {manifest.file_id!r}: assembled {len(out)} bytes, "
                                  f"manifest says {manifest.size}")
    return out
