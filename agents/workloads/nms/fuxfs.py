"""fuxfs: seed 000's FUSE client -- a filesystem whose files live in NMS blocks.

    python -m agents.workloads.nms.fuxfs MOUNTPOINT --server HOST:PORT --key-file F
        [--server-file PATH] [--volume NAME] [--client-id ID] [--retry-deadline S]
        [--cache-blocks N] [--debug]

It runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``, SIGTERM or SIGINT);
every dirty block and the metadata are written to the NMS before it exits.

Layout on the NMS (all integers big-endian, block size from the server, 8 KiB by default):

* **Superblock.** The NMS hands out random block ids, so there is no "block 0"; instead the
  superblock is allocated with a *deterministic* ALLOC token, SHA-256("fuxfs superblock v1" |
  volume name)[:16]. The server deduplicates ALLOC tokens and keeps them beside the blocks in its
  data directory, so after a migration (stop/commit/push/pull/run, or a restart on the same data
  directory) the same token still names the same block, and any client with the key finds the
  volume again. A freshly allocated (all-zero) superblock means "empty volume"; it is formatted.
  Contents: ``"FUXFSv1\\0" | u32 block size | u64 generation | u64 next inode | u64 metadata
  length | u32 metadata blocks | SHA-256(metadata) | u64 metadata block id ...``.
* **Metadata**: ``u32 count`` then per file ``u64 ino | u32 mode | u64 size | u64 mtime ns |
  u64 ctime ns | u32 nblocks | u16 name length | name (UTF-8) | u64 block id * nblocks``; block
  id 0 is a hole (reads as zeros; the server never hands out 0). It is spread over as many
  blocks as it needs.
* **Data**: each file is a list of whole NMS blocks.

Consistency (copy-on-write metadata): a commit writes the dirty data blocks, writes the
metadata into *newly allocated* blocks, then overwrites the superblock (one block WRITE, which
the server makes atomic with a rename), and only then frees the previous metadata blocks and the
data blocks that unlink/truncate/rename released. Whatever the superblock names on the NMS is
therefore always complete; a crash between the steps can leak blocks but never corrupt a file.
Commits happen on create, unlink, rename, truncate, chmod, utimens, and on flush (close), fsync,
release and unmount when something changed; writes are buffered in a bounded block cache (write
back on eviction, on flush/fsync and at unmount), so an unaligned 4 KiB write does not cost a
read-modify-write round trip each time.

Namespace: flat (files in the root directory only; ``mkdir`` is not supported), regular files,
names up to 255 bytes. Ops: create, open, read, write (partial, unaligned, appending, sparse),
truncate/ftruncate, unlink (an open file keeps its blocks until its last release), rename
(replacing a target), readdir, getattr, chmod, utimens, statfs (the NMS's block counts), flush,
fsync, release.

Reconnecting: ``NmsClient`` re-resolves the server and retries every request (all are
idempotent) until ``--retry-deadline``; a FUSE call that meets a migration simply blocks until
the NMS answers at its new address. ``--server-file`` names a file holding ``HOST:PORT`` that is
re-read at each reconnect: the SMF (seed 000's SMF_THREAD) or an operator rewrites it after a
migration and the mounted filesystem carries on without a remount. A wrong key is refused before
anything is mounted (exit status 1).

Binding: **mfusepy** (PyPI ``mfusepy``), the maintained successor of fusepy. It is pure Python
over ctypes, so it needs no compiler or ``libfuse3-dev`` -- only the ``fuse3`` Debian package
(``libfuse3.so.3`` and ``fusermount3``) -- and it works with libfuse 3 and 2, on x86 and on the
Jetsons' arm64 alike. Its high-level, path-based API matches a small flat namespace exactly.
pyfuse3 was the alternative: faster (low-level API, trio), but it compiles against libfuse3-dev
and would force an async design on a client whose NMS library is synchronous; fusepy itself has
been unmaintained since 2018 and knows only libfuse 2. mfusepy is imported only when mounting,
so `FuxVolume` (all the filesystem logic) is usable and testable without libfuse.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import logging
import os
import stat
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .auth import AuthenticationFailed, SharedKeyAuth
from .client import NmsClient, NmsError, NmsUnavailable, Resolver, static_resolver
from .protocol import ALLOC_TOKEN_BYTES, Op, StatInfo, Status, read_u64

log = logging.getLogger("nms.fuxfs")

MAGIC = b"FUXFSv1\0"
NAME_MAX = 255
DEFAULT_VOLUME = "fuxfs"
DEFAULT_CACHE_BLOCKS = 1024  # 8 MiB of 8 KiB blocks
_SUPER = struct.Struct(">8sIQQQI32s")
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">QIQQQIH")


class FuxfsCorrupt(Exception):
    """The superblock or the metadata it names does not verify."""


class BlockDevice(Protocol):
    """What fuxfs needs from the NMS (`NmsDevice` adapts `NmsClient`; tests use a fake)."""

    @property
    def block_size(self) -> int: ...

    def root_block(self, volume: str) -> int: ...

    def allocate(self) -> int: ...

    def write(self, block_id: int, data: bytes) -> None: ...

    def read(self, block_id: int) -> bytes: ...

    def free(self, block_id: int) -> None: ...

    def stat(self) -> StatInfo: ...


def superblock_token(volume: str) -> bytes:
    """The ALLOC token that always names ``volume``'s superblock on an NMS."""
    digest = hashlib.sha256(b"fuxfs superblock v1\0" + volume.encode()).digest()
    return digest[:ALLOC_TOKEN_BYTES]


class NmsDevice:
    """`BlockDevice` over an `NmsClient` (which reconnects through its resolver)."""

    def __init__(self, client: NmsClient) -> None:
        self.client = client

    @property
    def block_size(self) -> int:
        return self.client.block_size

    def root_block(self, volume: str) -> int:
        # NmsClient.allocate() draws a random token; the superblock needs a fixed one. ALLOC is
        # idempotent per token, so the call is as safe to retry as allocate().
        resp, _ = self.client._call(Op.ALLOC, superblock_token(volume))
        return read_u64(self.client._check(resp))

    def allocate(self) -> int:
        return self.client.allocate()

    def write(self, block_id: int, data: bytes) -> None:
        self.client.write(block_id, data)

    def read(self, block_id: int) -> bytes:
        return self.client.read(block_id)

    def free(self, block_id: int) -> None:
        try:
            self.client.free(block_id)
        except NmsError as err:
            if err.status is not Status.NOT_FOUND:
                raise
            log.warning("block %x was already free", block_id)

    def stat(self) -> StatInfo:
        return self.client.stat()


@dataclass
class Inode:
    ino: int
    name: str
    mode: int
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    blocks: list[int] = field(default_factory=list)  # 0 = hole
    open_count: int = 0
    unlinked: bool = False


def _oserror(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code), what)


def encode_metadata(inodes: list[Inode]) -> bytes:
    out = [_COUNT.pack(len(inodes))]
    for node in inodes:
        name = node.name.encode()
        out.append(_ENTRY.pack(node.ino, node.mode, node.size, node.mtime_ns, node.ctime_ns,
                               len(node.blocks), len(name)))
        out.append(name)
        out.append(struct.pack(f">{len(node.blocks)}Q", *node.blocks))
    return b"".join(out)


def decode_metadata(data: bytes) -> list[Inode]:
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
            raise _oserror(errno.ENOSPC, "metadata too large for the superblock")
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
            raise _oserror(errno.EINVAL, name)
        if len(name.encode()) > NAME_MAX:
            raise _oserror(errno.ENAMETOOLONG, name)

    def lookup(self, name: str) -> Inode:
        ino = self.names.get(name)
        if ino is None:
            raise _oserror(errno.ENOENT, name)
        return self.inodes[ino]

    def inode(self, ino: int) -> Inode:
        node = self.inodes.get(ino)
        if node is None:
            raise _oserror(errno.EBADF, str(ino))
        return node

    def listdir(self) -> list[str]:
        return sorted(self.names)

    def create(self, name: str, mode: int = 0o644) -> int:
        """Create an empty file and open it; returns its inode number (the file handle)."""
        self._check_name(name)
        if name in self.names:
            raise _oserror(errno.EEXIST, name)
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
            raise _oserror(errno.EINVAL, "negative length")
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


# -- FUSE adapter ---------------------------------------------------------------------------


def _name(path: str) -> str:
    name = path.lstrip("/")
    if "/" in name:
        raise _oserror(errno.ENOENT, path)
    return name


class FuxfsOperations:
    """mfusepy operations over a `FuxVolume`: one lock, device failures become EIO."""

    use_ns = True

    def __init__(self, volume: FuxVolume, uid: int | None = None,
                 gid: int | None = None) -> None:
        self.volume = volume
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self._lock = threading.Lock()
        self._mounted_ns = time.time_ns()
        self.flushed_at_unmount = False

    @contextlib.contextmanager
    def _op(self, what: str) -> Iterator[FuxVolume]:
        with self._lock:
            try:
                yield self.volume
            except OSError:
                raise
            except (NmsError, NmsUnavailable, AuthenticationFailed, FuxfsCorrupt) as err:
                log.error("%s failed: %s", what, err)
                raise _oserror(errno.EIO, what) from None

    def init(self, path: str) -> None:
        log.info("mounted volume %r (generation %d, %d files)", self.volume.volume,
                 self.volume.generation, len(self.volume.names))

    def destroy(self, path: str) -> None:
        with self._op("unmount") as vol:
            vol.flush()
        self.flushed_at_unmount = True
        log.info("unmounted; generation %d", self.volume.generation)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        with self._op("getattr") as vol:
            if path == "/":
                attrs = {"st_ino": 1, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2,
                         "st_size": 0, "st_mtime": self._mounted_ns,
                         "st_atime": self._mounted_ns, "st_ctime": self._mounted_ns}
            else:
                node = vol.inode(fh) if fh else vol.lookup(_name(path))
                attrs = vol.attributes(node)
        attrs["st_uid"], attrs["st_gid"] = self.uid, self.gid
        return attrs

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # With use_ino the kernel takes d_ino from st_ino, and readdir(3) hides d_ino == 0.
        with self._op("readdir") as vol:
            if path != "/":
                raise _oserror(errno.ENOTDIR, path)
            root = {"st_ino": 1, "st_mode": stat.S_IFDIR | 0o755}
            entries = [(".", root, 0), ("..", root, 0)]
            for name in vol.listdir():
                node = vol.lookup(name)
                entries.append((name, {"st_ino": node.ino, "st_mode": stat.S_IFREG | node.mode}, 0))
            return entries

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        with self._op("create") as vol:
            return vol.create(_name(path), mode)

    def open(self, path: str, flags: int) -> int:
        with self._op("open") as vol:
            ino = vol.open(_name(path))
            if flags & os.O_TRUNC:
                vol.truncate(ino, 0)
            return ino

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._op("read") as vol:
            return vol.read(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._op("write") as vol:
            return vol.write(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._op("truncate") as vol:
            vol.truncate(fh if fh else vol.lookup(_name(path)).ino, length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        with self._op("flush") as vol:
            vol.flush()
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        return self.flush(path, fh)

    def release(self, path: str, fh: int) -> int:
        with self._op("release") as vol:
            vol.release(fh)
        return 0

    def unlink(self, path: str) -> int:
        with self._op("unlink") as vol:
            vol.unlink(_name(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._op("rename") as vol:
            vol.rename(_name(old), _name(new))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        with self._op("chmod") as vol:
            vol.chmod(_name(path), mode)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        with self._op("utimens") as vol:
            vol.set_mtime(_name(path), None if times is None else int(times[1]))
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        with self._op("statfs") as vol:
            return vol.statfs()


def mount(volume: FuxVolume, mountpoint: Path, *, debug: bool = False) -> None:
    """Serve ``volume`` on ``mountpoint`` in the foreground until it is unmounted.

    Raises RuntimeError when libfuse fails, unless the volume was flushed at unmount (libfuse
    3 reports a loop ended by SIGTERM/SIGINT as an error, yet that is a clean stop).
    """
    import mfusepy  # loads libfuse; only the mounting process needs it

    ops = FuxfsOperations(volume)
    try:
        mfusepy.FUSE(ops, str(mountpoint), foreground=True, debug=debug,
                     fsname=f"fuxfs:{volume.volume}", subtype="fuxfs", hard_remove=True,
                     use_ino=True, default_permissions=True)
    except RuntimeError:
        if not ops.flushed_at_unmount:
            raise
        log.info("stopped by a signal after a clean unmount")


# -- CLI ----------------------------------------------------------------------------------------


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def file_resolver(path: Path, fallback: tuple[str, int] | None = None) -> Resolver:
    """Resolve the NMS from a file holding ``HOST:PORT``, re-read at every (re)connect."""

    def resolve() -> tuple[str, int]:
        try:
            return _endpoint(path.read_text())
        except (OSError, argparse.ArgumentTypeError):
            if fallback is None:
                raise
            return fallback

    return resolve


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.workloads.nms.fuxfs",
                                description="Mount a fuxfs volume stored on a Network Memory "
                                            "Server (runs in the foreground)")
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--server", type=_endpoint, metavar="HOST:PORT",
                   help="the NMS address (the fallback when --server-file is given)")
    p.add_argument("--server-file", type=Path, metavar="PATH",
                   help="file holding HOST:PORT, re-read at every reconnect (after a migration)")
    p.add_argument("--key-file", type=Path, required=True, help="session key file (mode 0600)")
    p.add_argument("--volume", default=DEFAULT_VOLUME, help="volume name (default: %(default)s)")
    p.add_argument("--client-id", default=os.environ.get("USER", "fuxfs"))
    p.add_argument("--retry-deadline", type=float, default=120.0,
                   help="seconds to keep reconnecting before an operation fails with EIO")
    p.add_argument("--cache-blocks", type=int, default=DEFAULT_CACHE_BLOCKS)
    p.add_argument("--debug", action="store_true", help="log every FUSE call")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.server is None and args.server_file is None:
        parser.error("give --server HOST:PORT or --server-file PATH")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s fuxfs %(levelname)s %(message)s")
    if not args.mountpoint.is_dir():
        print(f"fuxfs: mount point {args.mountpoint} is not a directory; mkdir it first",
              file=sys.stderr)
        return 2
    try:
        auth = SharedKeyAuth.from_file(args.key_file, args.client_id)
    except (OSError, ValueError) as err:
        print(f"fuxfs: cannot use key file {args.key_file}: {err}", file=sys.stderr)
        return 2
    resolver = (file_resolver(args.server_file, args.server) if args.server_file
                else static_resolver(*args.server))
    client = NmsClient(resolver, auth, retry_deadline=args.retry_deadline)
    try:
        volume = FuxVolume.load(NmsDevice(client), args.volume, cache_blocks=args.cache_blocks)
    except AuthenticationFailed as err:
        print(f"fuxfs: the NMS refused the session key ({err}); check --key-file",
              file=sys.stderr)
        return 1
    except (NmsError, NmsUnavailable, FuxfsCorrupt, OSError) as err:
        print(f"fuxfs: cannot open volume {args.volume!r}: {err}", file=sys.stderr)
        return 1
    try:
        mount(volume, args.mountpoint, debug=args.debug)
    except (RuntimeError, OSError) as err:
        print(f"fuxfs: mounting on {args.mountpoint} failed: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
