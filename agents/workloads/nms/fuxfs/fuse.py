"""The FUSE adapter: mfusepy operations over a `FuxVolume`, and `mount`."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..auth import AuthenticationFailed
from ..client import NmsError, NmsUnavailable
from .layout import FuxfsCorrupt, oserror
from .volume import FuxVolume

log = logging.getLogger("nms.fuxfs")


def _name(path: str) -> str:
    name = path.lstrip("/")
    if "/" in name:
        raise oserror(errno.ENOENT, path)
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
                raise oserror(errno.EIO, what) from None

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
                raise oserror(errno.ENOTDIR, path)
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

