"""`FuxVolume`: the filesystem over a `BlockDevice` (namespace, file data, block cache,
copy-on-write commits)."""

from __future__ import annotations

import errno
import hashlib
import logging
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .device import BlockDevice
from .layout import (
    NAME_MAX,
    FuxfsCorrupt,
    Inode,
    Superblock,
    decode_metadata,
    encode_metadata,
    oserror,
)

log = logging.getLogger("nms.fuxfs")

DEFAULT_VOLUME = "fuxfs"
DEFAULT_CACHE_BLOCKS = 1024  # 8 MiB of 8 KiB blocks


class FuxVolume:
    """The filesystem over a `BlockDevice`: namespace, file data, cache, commits.

    Not thread-safe: the FUSE adapter serialises calls with one lock. Errors a user can cause
    are `OSError` with an errno; device failures propagate as the device raises them.
    """

    def __init__(self, dev: BlockDevice, volume: str = DEFAULT_VOLUME,
                 cache_blocks: int = DEFAULT_CACHE_BLOCKS,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if cache_blocks < 1:
            raise ValueError("cache_blocks must be at least 1")
        self.dev = dev
        self.volume = volume
        self.bs = dev.block_size
        self.cache_blocks = cache_blocks
        self.clock = clock
        self.names: dict[str, int] = {}
        self.inodes: dict[int, Inode] = {}
        self.generation = 0
        self._next_ino = 2  # 1 is the root directory
        self._super_id = 0
        self._meta_ids: tuple[int, ...] = ()
        self._cache: OrderedDict[tuple[int, int], bytearray] = OrderedDict()
        self._dirty: set[tuple[int, int]] = set()
        self._pending_free: list[int] = []
        self._meta_dirty = False

    # -- load and commit ---------------------------------------------------------------------
    @classmethod
    def load(cls, dev: BlockDevice, volume: str = DEFAULT_VOLUME, **kwargs: Any) -> FuxVolume:
        """Find ``volume``'s superblock on the device; format it when it is new."""
        vol = cls(dev, volume, **kwargs)
        vol._read_superblock()
        return vol

    def _read_superblock(self) -> None:
        self._super_id = self.dev.root_block(self.volume)
        raw = self.dev.read(self._super_id)
        if not any(raw):
            log.info("formatting new fuxfs volume %r", self.volume)
            self._meta_dirty = True
            self.commit()
            return
        sb = Superblock.decode(raw)
        meta = b"".join(self.dev.read(bid) for bid in sb.meta_blocks)[: sb.meta_len]
        if hashlib.sha256(meta).digest() != sb.meta_digest:
            raise FuxfsCorrupt(f"metadata of generation {sb.generation} fails its SHA-256")
        for node in decode_metadata(meta):
            self.inodes[node.ino] = node
            self.names[node.name] = node.ino
        self.generation = sb.generation
        self._next_ino = sb.next_ino
        self._meta_ids = sb.meta_blocks

    def commit(self) -> None:
        """Write dirty data, new metadata, the superblock; then free what it no longer names."""
        self._write_back_all()
        if not self._meta_dirty and not self._pending_free:
            return
        live = [self.inodes[ino] for ino in sorted(self.names.values())]
        meta = encode_metadata(live)
        chunks = [meta[i : i + self.bs] for i in range(0, len(meta), self.bs)]
        new_ids: list[int] = []
        for chunk in chunks:
            bid = self.dev.allocate()
            new_ids.append(bid)
            self.dev.write(bid, chunk)
        sb = Superblock(self.bs, self.generation + 1, self._next_ino, len(meta),
                        hashlib.sha256(meta).digest(), tuple(new_ids))
        self.dev.write(self._super_id, sb.encode())
        old, self._meta_ids = self._meta_ids, sb.meta_blocks
        self.generation = sb.generation
        self._meta_dirty = False
        released, self._pending_free = self._pending_free, []
        for bid in (*old, *released):
            self.dev.free(bid)

    # -- block cache -------------------------------------------------------------------------
    def _block(self, node: Inode, idx: int, *, whole: bool = False) -> bytearray:
        """The cached block ``idx`` of ``node`` (read from the NMS unless ``whole`` is
        about to be overwritten or it is a hole)."""
        key = (node.ino, idx)
        buf = self._cache.get(key)
        if buf is not None:
            self._cache.move_to_end(key)
            return buf
        bid = node.blocks[idx] if idx < len(node.blocks) else 0
        buf = bytearray(self.bs) if whole or not bid else bytearray(self.dev.read(bid))
        self._cache[key] = buf
        while len(self._cache) > self.cache_blocks:
            old_key, old_buf = self._cache.popitem(last=False)
            if old_key in self._dirty:
                self._write_back(old_key, old_buf)
        return buf

    def _write_back(self, key: tuple[int, int], buf: bytearray) -> None:
        self._dirty.discard(key)
        node = self.inodes.get(key[0])
        if node is None:
            return
        idx = key[1]
        if idx >= len(node.blocks):
            node.blocks.extend([0] * (idx + 1 - len(node.blocks)))
        if not node.blocks[idx]:
            node.blocks[idx] = self.dev.allocate()
            self._meta_dirty = True
        self.dev.write(node.blocks[idx], bytes(buf))

    def _write_back_all(self) -> None:
        for key in sorted(self._dirty):
            self._write_back(key, self._cache[key])

    def _drop_blocks(self, node: Inode, first_idx: int) -> None:
        """Forget cached blocks from ``first_idx`` on; release their NMS blocks at commit."""
        for key in [k for k in self._cache if k[0] == node.ino and k[1] >= first_idx]:
            del self._cache[key]
            self._dirty.discard(key)
        self._pending_free.extend(b for b in node.blocks[first_idx:] if b)
        del node.blocks[first_idx:]

    # -- namespace ---------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise oserror(errno.EINVAL, name)
        if len(name.encode()) > NAME_MAX:
            raise oserror(errno.ENAMETOOLONG, name)

    def lookup(self, name: str) -> Inode:
        ino = self.names.get(name)
        if ino is None:
            raise oserror(errno.ENOENT, name)
        return self.inodes[ino]

    def inode(self, ino: int) -> Inode:
        node = self.inodes.get(ino)
        if node is None:
            raise oserror(errno.EBADF, str(ino))
        return node

    def listdir(self) -> list[str]:
        return sorted(self.names)

    def create(self, name: str, mode: int = 0o644) -> int:
        """Create an empty file and open it; returns its inode number (the file handle)."""
        self._check_name(name)
        if name in self.names:
            raise oserror(errno.EEXIST, name)
        now = self.clock()
        node = Inode(self._next_ino, name, stat.S_IMODE(mode), 0, now, now, open_count=1)
        self._next_ino += 1
        self.inodes[node.ino] = node
        self.names[name] = node.ino
        self._meta_dirty = True
        self.commit()
        return node.ino

    def open(self, name: str) -> int:
        node = self.lookup(name)
        node.open_count += 1
        return node.ino

    def release(self, ino: int) -> None:
        node = self.inode(ino)
        node.open_count = max(0, node.open_count - 1)
        if node.unlinked and node.open_count == 0:
            self._forget(node)
        self.commit()

    def _forget(self, node: Inode) -> None:
        self._drop_blocks(node, 0)
        del self.inodes[node.ino]
        self._meta_dirty = True

    def _remove_name(self, name: str) -> None:
        node = self.lookup(name)
        del self.names[name]
        node.unlinked = True
        if node.open_count == 0:
            self._forget(node)
        self._meta_dirty = True

    def unlink(self, name: str) -> None:
        self._remove_name(name)
        self.commit()

    def rename(self, old: str, new: str) -> None:
        node = self.lookup(old)
        self._check_name(new)
        if old == new:
            return
        if new in self.names:
            self._remove_name(new)
        del self.names[old]
        self.names[new] = node.ino
        node.name = new
        node.ctime_ns = self.clock()
        self._meta_dirty = True
        self.commit()

    def chmod(self, name: str, mode: int) -> None:
        node = self.lookup(name)
        node.mode = stat.S_IMODE(mode)
        node.ctime_ns = self.clock()
        self._meta_dirty = True
        self.commit()

    def set_mtime(self, name: str, mtime_ns: int | None) -> None:
        node = self.lookup(name)
        node.mtime_ns = self.clock() if mtime_ns is None else mtime_ns
        self._meta_dirty = True
        self.commit()

    # -- data --------------------------------------------------------------------------------
    def read(self, ino: int, size: int, offset: int) -> bytes:
        node = self.inode(ino)
        end = min(node.size, offset + size)
        out = bytearray()
        pos = offset
        while pos < end:
            idx, boff = divmod(pos, self.bs)
            n = min(self.bs - boff, end - pos)
            out += self._block(node, idx)[boff : boff + n]
            pos += n
        return bytes(out)

    def write(self, ino: int, data: bytes, offset: int) -> int:
        node = self.inode(ino)
        pos = 0
        while pos < len(data):
            idx, boff = divmod(offset + pos, self.bs)
            n = min(self.bs - boff, len(data) - pos)
            buf = self._block(node, idx, whole=n == self.bs)
            buf[boff : boff + n] = data[pos : pos + n]
            self._dirty.add((ino, idx))
            pos += n
        node.size = max(node.size, offset + len(data))
        node.mtime_ns = node.ctime_ns = self.clock()
        self._meta_dirty = True
        return len(data)

    def truncate(self, ino: int, length: int) -> None:
        if length < 0:
            raise oserror(errno.EINVAL, "negative length")
        node = self.inode(ino)
        keep = -(-length // self.bs)
        if length < node.size:
            self._drop_blocks(node, keep)
            tail = length % self.bs
            if tail:
                # Bytes past the end of a file are zero on the NMS (an extension reads zeros).
                buf = self._block(node, keep - 1)
                buf[tail:] = bytes(self.bs - tail)
                self._dirty.add((ino, keep - 1))
        node.size = length
        node.mtime_ns = node.ctime_ns = self.clock()
        self._meta_dirty = True
        self.commit()

    def flush(self) -> None:
        self.commit()

    # -- attributes --------------------------------------------------------------------------
    def attributes(self, node: Inode) -> dict[str, int]:
        used = sum(1 for b in node.blocks if b) + sum(
            1 for (ino, idx) in self._dirty
            if ino == node.ino and (idx >= len(node.blocks) or not node.blocks[idx]))
        return {
            "st_ino": node.ino, "st_mode": stat.S_IFREG | node.mode, "st_nlink": 1,
            "st_size": node.size, "st_blocks": used * self.bs // 512, "st_blksize": self.bs,
            "st_mtime": node.mtime_ns, "st_atime": node.mtime_ns, "st_ctime": node.ctime_ns,
        }

    def statfs(self) -> dict[str, int]:
        info = self.dev.stat()
        free = max(0, info.capacity_blocks - info.blocks_used)
        return {
            "f_bsize": info.block_size, "f_frsize": info.block_size,
            "f_blocks": info.capacity_blocks, "f_bfree": free, "f_bavail": free,
            "f_files": info.capacity_blocks, "f_ffree": free, "f_favail": free,
            "f_namemax": NAME_MAX,
        }
