"""fuxfs's layout on the NMS: superblock, metadata encoding, inodes (see the package docstring).

Pure data: no I/O, no NMS client.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from dataclasses import dataclass, field

from ..protocol import ALLOC_TOKEN_BYTES

MAGIC = b"FUXFSv1\0"
NAME_MAX = 255
_SUPER = struct.Struct(">8sIQQQI32s")
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">QIQQQIH")


class FuxfsCorrupt(Exception):
    """The superblock or the metadata it names does not verify."""


def superblock_token(volume: str) -> bytes:
    """The ALLOC token that always names ``volume``'s superblock on an NMS."""
    digest = hashlib.sha256(b"fuxfs superblock v1\0" + volume.encode()).digest()
    return digest[:ALLOC_TOKEN_BYTES]


@dataclass
class Inode:
    """One file: what the metadata records, plus its open count (in memory only)."""

    ino: int
    name: str
    mode: int
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    blocks: list[int] = field(default_factory=list)  # 0 = hole
    open_count: int = 0
    unlinked: bool = False


def oserror(code: int, what: str = "") -> OSError:
    """An `OSError` carrying ``code`` (the errno a FUSE call returns) and its message."""
    return OSError(code, os.strerror(code), what)


def encode_metadata(inodes: list[Inode]) -> bytes:
    """The metadata record of ``inodes`` (see the package docstring for the format)."""
    out = [_COUNT.pack(len(inodes))]
    for node in inodes:
        name = node.name.encode()
        out.append(_ENTRY.pack(node.ino, node.mode, node.size, node.mtime_ns, node.ctime_ns,
                               len(node.blocks), len(name)))
        out.append(name)
        out.append(struct.pack(f">{len(node.blocks)}Q", *node.blocks))
    return b"".join(out)


def decode_metadata(data: bytes) -> list[Inode]:
    """The inodes of a metadata record; `FuxfsCorrupt` when it does not decode exactly."""
    try:
        (count,) = _COUNT.unpack_from(data)
        pos = _COUNT.size
        nodes = []
        for _ in range(count):
            ino, mode, size, mtime, ctime, nblocks, name_len = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            name = data[pos : pos + name_len].decode()
            pos += name_len
            blocks = list(struct.unpack_from(f">{nblocks}Q", data, pos))
            pos += 8 * nblocks
            nodes.append(Inode(ino, name, mode, size, mtime, ctime, blocks))
    except (struct.error, UnicodeDecodeError) as err:
        raise FuxfsCorrupt(f"metadata does not decode: {err}") from None
    if pos != len(data):
        raise FuxfsCorrupt("metadata has trailing bytes")
    return nodes


@dataclass(frozen=True)
class Superblock:
    block_size: int
    generation: int
    next_ino: int
    meta_len: int
    meta_digest: bytes
    meta_blocks: tuple[int, ...]

    @staticmethod
    def capacity(block_size: int) -> int:
        """How many metadata block ids fit in one superblock."""
        return (block_size - _SUPER.size) // 8

    def encode(self) -> bytes:
        if len(self.meta_blocks) > self.capacity(self.block_size):
            raise oserror(errno.ENOSPC, "metadata too large for the superblock")
        head = _SUPER.pack(MAGIC, self.block_size, self.generation, self.next_ino, self.meta_len,
                           len(self.meta_blocks), self.meta_digest)
        body = head + struct.pack(f">{len(self.meta_blocks)}Q", *self.meta_blocks)
        return body.ljust(self.block_size, b"\0")

    @classmethod
    def decode(cls, data: bytes) -> Superblock:
        if len(data) < _SUPER.size:
            raise FuxfsCorrupt("superblock shorter than its header")
        magic, bsize, gen, next_ino, meta_len, n, digest = _SUPER.unpack_from(data)
        if magic != MAGIC:
            raise FuxfsCorrupt("the superblock block does not hold a fuxfs superblock")
        if bsize != len(data):
            raise FuxfsCorrupt(f"volume made with {bsize}-byte blocks, server has {len(data)}")
        if n > cls.capacity(bsize) or meta_len > n * bsize:
            raise FuxfsCorrupt("superblock metadata extent is out of range")
        ids = struct.unpack_from(f">{n}Q", data, _SUPER.size)
        return cls(bsize, gen, next_ino, meta_len, digest, tuple(ids))

