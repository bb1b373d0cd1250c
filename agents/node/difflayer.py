"""A stopped container's changes as one image layer, without the registry. No docker here.

The direct order (issue 17) moves the service's state from the source's engine to the
destination's without a registry in between: the engine lists the container's changes against
its image (``GET /containers/{id}/changes``: path and kind, added / modified / deleted), and
gives the content of any path as a tar (``GET /containers/{id}/archive``). `plan_layer` turns
the change list into what to fetch and which whiteouts to write, and `LayerWriter` assembles the
fetched tars into one layer tar in the image layer format (Docker image spec v1.2, the format
``docker load`` applies): whole files and new directories, ``.wh.<name>`` for a deleted path
and ``<dir>/.wh..wh..opq`` for a directory deleted and made again (overlay reports it deleted,
its new entries added). Its SHA-256 is the layer's diff_id; the destination's engine hashes the
tar again when it loads it on top of the image the source ran from.

A modified directory is written as its own entry only (mode, owner, times), not its subtree; its
changed entries are listed and fetched on their own. Hard links between changed files arrive as
separate copies.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

#: kinds of ``GET /containers/{id}/changes`` (moby ``archive.ChangeType``)
MODIFIED, ADDED, DELETED = 0, 1, 2
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: a change list longer than this is refused (bounded state; the registry orders move it)
MAX_CHANGES = 100_000


class BadChanges(ValueError):
    """The engine's change list cannot describe a layer (a path outside the root, a duplicate)."""


@dataclass(frozen=True)
class Fetch:
    """One path to read from the container: ``recursive`` for a new directory (everything
    under it is new); ``header_only`` for a modified directory (its own entry: mode, owner,
    times -- a layer without it would make the directory root's); ``if_file`` for a modified
    path that is either (whole when a file, its entry alone when a directory); ``opaque`` for
    a directory deleted and made again (its marker follows its entry)."""

    path: str
    recursive: bool = False
    if_file: bool = False
    opaque: bool = False
    header_only: bool = False


@dataclass(frozen=True)
class LayerPlan:
    """What the layer holds: the fetches in path order and the whiteout entry names."""

    fetches: tuple[Fetch, ...]
    whiteouts: tuple[str, ...]


def _clean(path: str) -> str:
    norm = posixpath.normpath("/" + path.lstrip("/"))
    if norm != path or norm == "/" or "\0" in path:
        raise BadChanges(f"change path {path[:200]!r} is not an absolute, normal path")
    return norm


def within(path: str, roots: Iterable[str]) -> bool:
    """True when ``path`` is one of ``roots`` or lies under one (the container's mounts)."""
    return any(path == root or path.startswith(root + "/")
               for root in (r.rstrip("/") for r in roots))


def without_mounts(changes: Iterable[Mapping[str, Any]],
                   mounts: Iterable[str]) -> list[Mapping[str, Any]]:
    """``changes`` less the container's mounts (secrets, volumes: a commit leaves them out)
    and less the modified directories listed only because the engine made mount points under
    them (``/run``, ``/run/secrets`` for a secret at ``/run/secrets/key``): every change
    under such a directory is a mount or another such directory. A modified directory with
    no change under it (its mode or owner changed) stays."""
    roots = [m for m in mounts if m]
    listed = list(changes)
    kinds = {str(c.get("Path", "")): c.get("Kind") for c in listed}
    below: dict[str, list[str]] = {}
    for path in kinds:
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            below.setdefault(parent, []).append(path)
            parent = posixpath.dirname(parent)
    mount_only: set[str] = set()
    for path in sorted(kinds, key=lambda p: -p.count("/")):  # deepest first
        under = below.get(path, [])
        if kinds[path] == MODIFIED and under and all(
                within(q, roots) or q in mount_only for q in under):
            mount_only.add(path)
    return [c for c in listed if not within(str(c.get("Path", "")), roots)
            and str(c.get("Path", "")) not in mount_only]


def _under(path: str, roots: set[str]) -> bool:
    parent = posixpath.dirname(path)
    while parent != "/":
        if parent in roots:
            return True
        parent = posixpath.dirname(parent)
    return False


def plan_layer(changes: Iterable[Mapping[str, Any]], exists: Mapping[str, bool]) -> LayerPlan:
    """The layer of ``changes`` (the engine's list). ``exists``: for each DELETED path, whether
    the stopped container still has it (a directory deleted and made again is reported deleted,
    with its new entries added under it; an empty one only by still existing)."""
    kinds: dict[str, int] = {}
    for n, change in enumerate(changes):
        if n >= MAX_CHANGES:
            raise BadChanges(f"more than {MAX_CHANGES} changed paths")
        path, kind = _clean(str(change.get("Path", ""))), int(change.get("Kind", -1))
        if kind not in (MODIFIED, ADDED, DELETED) or path in kinds:
            raise BadChanges(f"change {path[:200]!r}: kind {kind} unknown or listed twice")
        kinds[path] = kind
    remade = {p for p, k in kinds.items() if k == DELETED and (
        exists.get(p, False) or any(q.startswith(p + "/") and kinds[q] != DELETED for q in kinds))}
    gone = {p for p, k in kinds.items() if k == DELETED and p not in remade}
    new_dirs = {p for p, k in kinds.items() if k == ADDED} | remade
    fetches: list[Fetch] = []
    for path in sorted(kinds):
        kind = kinds[path]
        if kind == DELETED and path in gone:
            continue
        if _under(path, new_dirs):  # inside a fetched new (or remade) directory
            continue
        if path in remade:
            fetches.append(Fetch(path, recursive=True, opaque=True))
        elif kind == ADDED:
            fetches.append(Fetch(path, recursive=True))
        elif any(q.startswith(path + "/") for q in kinds):  # a directory lists its changes
            fetches.append(Fetch(path, header_only=True))
        else:
            fetches.append(Fetch(path, if_file=True))
    whiteouts = sorted(posixpath.join(posixpath.dirname(p), WHITEOUT_PREFIX +
                                      posixpath.basename(p)).lstrip("/")
                       for p in gone if not _under(p, gone | new_dirs))
    return LayerPlan(tuple(fetches), tuple(whiteouts))


def remaining_after(early: Iterable[Fetch], plan: LayerPlan) -> tuple[Fetch, ...]:
    """The fetches of ``plan`` (from the listing after the stop) that the ``early`` ones (from
    a listing while the container ran, fetched after the stop) leave to make. A fetch that is
    not recursive writes the same entries whether it is ``if_file`` or ``header_only`` (what
    it writes depends on what the path is once stopped), so those two count as one.
    BadChanges when an early fetch has no match in ``plan``: its entries are in the layer
    already and a layer cannot take them back (the path changed kind between the listings)."""

    def key(f: Fetch) -> tuple[str, bool, bool]:
        return f.path, f.recursive, f.opaque

    done = {key(f) for f in early}
    stray = sorted(path for path, _, _ in done - {key(f) for f in plan.fetches})
    if stray:
        raise BadChanges(f"{len(stray)} path(s) changed between the listing before the stop "
                         f"and the one after it (first {stray[0][:200]!r}); migrate again")
    return tuple(f for f in plan.fetches if key(f) not in done)


class ChunkReader:
    """A readable file over an iterator of byte chunks (the engine's archive response)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks, self._buf, self._pos = iter(chunks), b"", 0

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        want = size
        while want != 0:
            if self._pos >= len(self._buf):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buf, self._pos = chunk, 0
            take = len(self._buf) - self._pos if want < 0 else min(want,
                                                                   len(self._buf) - self._pos)
            parts.append(self._buf[self._pos:self._pos + take])
            self._pos += take
            if want > 0:
                want -= take
        return b"".join(parts)


class _Hashing:
    """A write-only file that hashes and counts what passes to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)


class LayerWriter:
    """Writes the layer tar to ``out``: `add_fetched` for each fetched path's archive (its
    entries re-rooted under the path's parent; those at or under a ``skip`` path left out),
    `add_whiteouts`, then `close` for the digest.

        with open(path, "wb") as fh:
            w = LayerWriter(fh)
            w.add_fetched(fetch, archive_stream)
            w.add_whiteouts(plan.whiteouts)
            digest, size = w.close()
    """

    def __init__(self, out: IO[bytes] | Any, max_bytes: int, skip: Iterable[str] = ()) -> None:
        self._sink = _Hashing(out)
        self._max = max_bytes
        self._tar = tarfile.open(  # noqa: SIM115 -- closed by close()
            fileobj=self._sink, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
        self.entries = 0
        self._content = 0  # bytes of the entries added (the tar module buffers a record)
        #: paths left out with everything under them (the container's mounts)
        self._skip = tuple(p for p in skip if p.strip("/"))

    def _check(self) -> None:
        if max(self._sink.size, self._content) > self._max:
            raise BadChanges(f"the container's changes exceed {self._max} bytes")

    def add_fetched(self, fetch: Fetch, archive: IO[bytes] | ChunkReader,
                    header_only: bool = False) -> None:
        """The entries of the engine's archive of ``fetch.path`` (its basename is the top
        entry), each renamed to its path in the image; ``header_only``: the top entry alone
        (a directory's), the rest of the archive is not read."""
        parent = posixpath.dirname(fetch.path).lstrip("/")
        with tarfile.open(fileobj=archive, mode="r|") as src:  # type: ignore[call-overload]
            for member in src:
                name = posixpath.normpath(member.name)
                if name.startswith(("/", "../")) or name == "..":
                    raise BadChanges(f"archive of {fetch.path} holds {member.name[:200]!r}")
                member.name = posixpath.join(parent, name) if parent else name
                if within("/" + member.name, self._skip):
                    continue
                if member.islnk():  # a hard link inside the fetched subtree
                    member.linkname = posixpath.join(parent, member.linkname) if parent \
                        else member.linkname
                body = src.extractfile(member) if member.isreg() else None
                self._content += member.size + tarfile.BLOCKSIZE
                self._check()
                self._tar.addfile(member, body)
                self.entries += 1
                if fetch.opaque and member.isdir() and posixpath.join("/", member.name) == \
                        fetch.path:
                    self._marker(posixpath.join(member.name, OPAQUE_MARKER))
                self._check()
                if header_only:
                    break

    def _marker(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        self._tar.addfile(info)
        self.entries += 1

    def add_whiteouts(self, names: Iterable[str]) -> None:
        for name in names:
            self._marker(name)
        self._check()

    def discard(self) -> None:
        """Give up a layer that failed half-way: nothing more is written to the output."""
        self._tar.fileobj.closed = True  # the tar stream's own flag: no flush at collection
        self._tar.closed = True

    def close(self) -> tuple[str, int]:
        """("sha256:<hex>", bytes) of the finished tar."""
        self._tar.close()
        self._check()
        return f"sha256:{self._sink.sha.hexdigest()}", self._sink.size
