"""fuxfs volume logic over an in-memory block device (no FUSE, no network).

The fake mirrors the NMS's contract: random non-zero block ids, whole-block writes, a READ or
WRITE of an unallocated block fails, and ALLOC with the same token returns the same block.
"""

from __future__ import annotations

import errno
import hashlib
import random
import stat

import pytest

from agents.workloads.nms.fuxfs.fuse import FuxfsOperations
from agents.workloads.nms.fuxfs.layout import (
    MAGIC,
    FuxfsCorrupt,
    Inode,
    Superblock,
    decode_metadata,
    encode_metadata,
    superblock_token,
)
from agents.workloads.nms.fuxfs.volume import FuxVolume
from agents.workloads.nms.protocol import StatInfo

BS = 8192


class MemoryDevice:
    def __init__(self, block_size: int = BS, capacity: int = 4096) -> None:
        self.block_size = block_size
        self.capacity = capacity
        self.blocks: dict[int, bytes] = {}
        self.tokens: dict[bytes, int] = {}
        self.rng = random.Random(7)
        self.reads = 0
        self.writes = 0

    def _new(self) -> int:
        while True:
            bid = self.rng.getrandbits(63) or 1
            if bid not in self.blocks:
                self.blocks[bid] = bytes(self.block_size)
                return bid

    def root_block(self, volume: str) -> int:
        token = superblock_token(volume)
        if token not in self.tokens or self.tokens[token] not in self.blocks:
            self.tokens[token] = self._new()
        return self.tokens[token]

    def allocate(self) -> int:
        return self._new()

    def write(self, block_id: int, data: bytes) -> None:
        assert len(data) <= self.block_size
        if block_id not in self.blocks:
            raise KeyError(f"write to unallocated block {block_id:x}")
        self.writes += 1
        self.blocks[block_id] = data.ljust(self.block_size, b"\0")

    def read(self, block_id: int) -> bytes:
        self.reads += 1
        return self.blocks[block_id]

    def free(self, block_id: int) -> None:
        del self.blocks[block_id]

    def stat(self) -> StatInfo:
        return StatInfo(self.block_size, len(self.blocks), self.capacity)


@pytest.fixture
def dev() -> MemoryDevice:
    return MemoryDevice()


def reopen(dev: MemoryDevice, **kw: int) -> FuxVolume:
    return FuxVolume.load(dev, **kw)  # type: ignore[arg-type]


def put(vol: FuxVolume, name: str, data: bytes) -> None:
    ino = vol.create(name)
    vol.write(ino, data, 0)
    vol.release(ino)


def get(vol: FuxVolume, name: str) -> bytes:
    ino = vol.open(name)
    try:
        return vol.read(ino, 1 << 30, 0)
    finally:
        vol.release(ino)


def referenced(vol: FuxVolume) -> set[int]:
    """Every block the committed volume names: superblock, metadata, data."""
    refs = {vol._super_id, *vol._meta_ids}
    for node in vol.inodes.values():
        refs.update(b for b in node.blocks if b)
    return refs


def test_new_volume_is_formatted_and_found_again(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    assert vol.generation == 1 and vol.listdir() == []
    assert dev.blocks[vol._super_id].startswith(MAGIC)
    again = reopen(dev)
    assert again._super_id == vol._super_id and again.generation == 1


@pytest.mark.parametrize("size", [0, 1, BS - 1, BS, BS + 1, 3 * BS + 17, 1_000_000])
def test_sizes_survive_a_reload(dev: MemoryDevice, size: int) -> None:
    data = random.Random(size).randbytes(size)
    vol = reopen(dev)
    put(vol, "f", data)
    node = vol.lookup("f")
    assert node.size == size and len(node.blocks) == -(-size // BS)
    assert get(reopen(dev), "f") == data


def test_unaligned_writes_and_appends(dev: MemoryDevice) -> None:
    vol = reopen(dev, cache_blocks=2)  # tiny cache: forces write-back and re-reads
    rng = random.Random(1)
    model = bytearray()
    ino = vol.create("log")
    for _ in range(60):
        chunk = rng.randbytes(rng.randint(1, 3 * BS))
        # half overwrite inside (and maybe past) the end, half append
        off = rng.randrange(len(model)) if model and rng.random() < 0.5 else len(model)
        vol.write(ino, chunk, off)
        model[off : off + len(chunk)] = chunk
    vol.release(ino)
    assert get(vol, "log") == bytes(model)
    assert get(reopen(dev), "log") == bytes(model)


def test_write_past_the_end_leaves_a_zero_hole(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    ino = vol.create("sparse")
    vol.write(ino, b"abc", 5 * BS + 10)
    vol.release(ino)
    node = vol.lookup("sparse")
    assert node.blocks[:5] == [0] * 5 and node.blocks[5]  # holes cost no NMS block
    assert get(reopen(dev), "sparse") == bytes(5 * BS + 10) + b"abc"


def test_truncate_shrink_zeroes_the_tail_and_frees_blocks(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "t", b"\xff" * (4 * BS))
    before = set(vol.lookup("t").blocks)
    ino = vol.open("t")
    vol.truncate(ino, BS + 100)
    vol.truncate(ino, 3 * BS)  # extend again: the old bytes must not come back
    vol.release(ino)
    data = get(reopen(dev), "t")
    assert data == b"\xff" * (BS + 100) + bytes(2 * BS - 100)
    kept = {b for b in vol.lookup("t").blocks if b}
    assert len(kept) == 2 and not (before - kept) & set(dev.blocks)


def test_unlink_frees_every_block_and_leaks_none(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "a", b"x" * (3 * BS))
    put(vol, "b", b"y")
    vol.unlink("a")
    assert set(dev.blocks) == referenced(vol)
    assert reopen(dev).listdir() == ["b"]
    with pytest.raises(OSError) as err:
        vol.unlink("a")
    assert err.value.errno == errno.ENOENT


def test_unlinked_open_file_stays_readable_until_release(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "tmp", b"keep me")
    ino = vol.open("tmp")
    vol.unlink("tmp")
    assert vol.listdir() == [] and reopen(dev).listdir() == []
    assert vol.read(ino, 100, 0) == b"keep me"
    vol.release(ino)
    assert set(dev.blocks) == referenced(vol)


def test_rename_replaces_the_target(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "new", b"new contents")
    put(vol, "old", b"stale" * 4000)
    vol.rename("new", "old")
    assert vol.listdir() == ["old"]
    assert get(reopen(dev), "old") == b"new contents"
    assert set(dev.blocks) == referenced(vol)
    with pytest.raises(OSError) as err:
        vol.rename("missing", "x")
    assert err.value.errno == errno.ENOENT


def test_metadata_is_copy_on_write(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "a", b"1")
    gen, meta = vol.generation, vol._meta_ids
    put(vol, "b", b"2")
    assert vol.generation > gen
    assert not set(meta) & set(vol._meta_ids)  # new blocks, old ones freed after the switch
    assert not set(meta) & set(dev.blocks)


def test_metadata_spanning_many_blocks(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    names = [f"file-{i:04d}-" + "n" * 200 for i in range(120)]  # ~27 KiB of metadata
    for i, name in enumerate(names):
        put(vol, name, i.to_bytes(2, "big"))
    assert len(vol._meta_ids) > 1
    again = reopen(dev)
    assert again.listdir() == sorted(names)
    assert get(again, names[77]) == (77).to_bytes(2, "big")


def test_a_crash_before_the_superblock_write_keeps_the_old_state(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "a", b"committed")
    ino = vol.open("a")
    vol.write(ino, b"lost", 0)  # dirty, never flushed: the "crash" drops the process here
    assert get(reopen(dev), "a") == b"committed"


def test_corrupt_metadata_is_refused(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    put(vol, "a", b"x")
    bid = vol._meta_ids[0]
    dev.blocks[bid] = b"\x01" + dev.blocks[bid][1:]
    with pytest.raises(FuxfsCorrupt, match="SHA-256"):
        reopen(dev)
    dev.blocks[vol._super_id] = b"not a superblock".ljust(BS, b"\0")
    with pytest.raises(FuxfsCorrupt, match="superblock"):
        reopen(dev)


def test_volumes_are_separate(dev: MemoryDevice) -> None:
    put(FuxVolume.load(dev, "alice"), "f", b"alice")  # type: ignore[arg-type]
    put(FuxVolume.load(dev, "bob"), "f", b"bob")  # type: ignore[arg-type]
    assert get(FuxVolume.load(dev, "alice"), "f") == b"alice"  # type: ignore[arg-type]
    assert superblock_token("alice") != superblock_token("bob")


def test_names_are_checked(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    for bad, code in [("", errno.EINVAL), ("a/b", errno.EINVAL), ("x" * 256, errno.ENAMETOOLONG)]:
        with pytest.raises(OSError) as err:
            vol.create(bad)
        assert err.value.errno == code
    vol.release(vol.create("dup"))
    with pytest.raises(OSError) as err:
        vol.create("dup")
    assert err.value.errno == errno.EEXIST


def test_cache_avoids_read_modify_write_round_trips(dev: MemoryDevice) -> None:
    vol = reopen(dev)
    ino = vol.create("small-writes")
    reads = dev.reads
    for i in range(64):  # 64 x 1 KiB unaligned writes into 8 blocks
        vol.write(ino, bytes([i]) * 1024, 1024 * i + 3)
    writes = dev.writes
    vol.release(ino)
    assert dev.reads == reads  # nothing read back: all blocks were new and cached
    assert dev.writes - writes <= 9 + 3  # 9 data blocks + metadata + superblock


def test_metadata_codec_round_trip() -> None:
    nodes = [Inode(2, "a", 0o600, 5, 1, 2, [9, 0, 11]), Inode(7, "é ü", 0o644, 0, 3, 4, [])]
    assert decode_metadata(encode_metadata(nodes)) == nodes
    with pytest.raises(FuxfsCorrupt):
        decode_metadata(encode_metadata(nodes) + b"x")
    sb = Superblock(BS, 3, 9, 10, hashlib.sha256(b"").digest(), (5, 6))
    assert Superblock.decode(sb.encode()) == sb


def test_operations_map_paths_and_errors(dev: MemoryDevice) -> None:
    ops = FuxfsOperations(FuxVolume.load(dev), uid=1000, gid=1000)  # type: ignore[arg-type]
    fh = ops.create("/f", 0o100640)
    assert ops.write("/f", b"hello", 0, fh) == 5
    ops.flush("/f", fh)
    ops.release("/f", fh)
    attrs = ops.getattr("/f")
    assert stat.S_ISREG(attrs["st_mode"]) and stat.S_IMODE(attrs["st_mode"]) == 0o640
    assert attrs["st_size"] == 5 and attrs["st_uid"] == 1000
    assert stat.S_ISDIR(ops.getattr("/")["st_mode"])
    assert [e[0] for e in ops.readdir("/", 0)] == [".", "..", "f"]
    assert all(e[1]["st_ino"] for e in ops.readdir("/", 0))  # readdir(3) hides d_ino == 0
    ops.truncate("/f", 2)
    ops.rename("/f", "/g")
    ops.utimens("/g", (0, 123_000_000_000))
    assert ops.getattr("/g")["st_mtime"] == 123_000_000_000
    assert ops.statfs("/")["f_bsize"] == BS
    for call in (lambda: ops.getattr("/f"), lambda: ops.getattr("/d/x")):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.ENOENT


def test_device_failure_becomes_eio(dev: MemoryDevice) -> None:
    from agents.workloads.nms.client import NmsUnavailable

    ops = FuxfsOperations(FuxVolume.load(dev))  # type: ignore[arg-type]

    def down() -> StatInfo:
        raise NmsUnavailable("NMS unreachable for 120.0 s")

    dev.stat = down  # type: ignore[method-assign]
    with pytest.raises(OSError) as err:
        ops.statfs("/")
    assert err.value.errno == errno.EIO
