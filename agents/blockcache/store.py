"""The origin's block store on disk: content-addressed blocks and one manifest per file.

Layout under the agent's data folder::

    origin/blocks/<digest[:2]>/<digest>     a block's bytes (sha256 hex of them is the name)
    origin/manifests/<file_id>.json         {"file_id", "size", "block_size", "blocks": [...]}

Files are written to a temporary name and renamed, so a crash never leaves a half block under
its digest; a block read back is verified against its name before it is served. Bounded:
at most `max_files` files and `max_bytes` bytes of blocks.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from agents.sso.blocks import BlockIntegrityError, FileManifest, decompose, verify_block

FILE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class StoreFull(Exception):
    """Storing the file would exceed the store's bounds."""


def check_file_id(file_id: str) -> str:
    """`file_id` if it is a valid id ([A-Za-z0-9._-], 1-128), else ValueError."""
    if not FILE_ID_RE.match(file_id) or file_id in (".", ".."):
        raise ValueError(f"file id {file_id[:40]!r} is not [A-Za-z0-9._-]{{1,128}}")
    return file_id


def check_digest(digest: str) -> str:
    """`digest` if it is a sha256 hex digest, else ValueError."""
    if not DIGEST_RE.match(digest):
        raise ValueError(f"digest {digest[:70]!r} is not 64 lowercase hex characters")
    return digest


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class OriginStore:
    """Files decomposed into blocks on disk (the paper's cloud storage site)."""

    def __init__(self, root: Path, *, max_files: int = 100_000,
                 max_bytes: int = 64 * 1024**3) -> None:
        self.root = root
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        (root / "blocks").mkdir(parents=True, exist_ok=True)
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        self._manifests: dict[str, FileManifest] = {}
        self._bytes = 0
        for path in sorted((root / "manifests").glob("*.json")):
            manifest = self._read_manifest(path)
            self._manifests[manifest.file_id] = manifest
        self._bytes = sum(p.stat().st_size for p in (root / "blocks").rglob("*") if p.is_file())

    @staticmethod
    def _read_manifest(path: Path) -> FileManifest:
        doc = json.loads(path.read_text())
        return FileManifest(str(doc["file_id"]), int(doc["size"]),
                            tuple(str(d) for d in doc["blocks"]), int(doc["block_size"]))

    def _block_path(self, digest: str) -> Path:
        return self.root / "blocks" / digest[:2] / digest

    def put(self, file_id: str, data: bytes, block_size: int) -> FileManifest:
        """Store `data` as file `file_id` (replacing an earlier version); its manifest."""
        check_file_id(file_id)
        manifest, blocks = decompose(file_id, data, block_size)
        with self._lock:
            if file_id not in self._manifests and len(self._manifests) >= self.max_files:
                raise StoreFull(f"the origin holds {self.max_files} files already")
            new = {d: b for d, b in blocks.items() if not self._block_path(d).exists()}
            added = sum(len(b) for b in new.values())
            if self._bytes + added > self.max_bytes:
                raise StoreFull(f"storing {file_id!r} would exceed {self.max_bytes} bytes")
            for digest, block in new.items():
                _write_atomic(self._block_path(digest), block)
            self._bytes += added
            doc = {"file_id": file_id, "size": manifest.size, "block_size": manifest.block_size,
                   "blocks": list(manifest.blocks)}
            _write_atomic(self.root / "manifests" / f"{file_id}.json",
                          json.dumps(doc).encode())
            self._manifests[file_id] = manifest
        return manifest

    def manifest(self, file_id: str) -> FileManifest | None:
        """The manifest of `file_id`, None when the store does not hold it."""
        with self._lock:
            return self._manifests.get(file_id)

    def files(self) -> list[str]:
        """Ids of the stored files."""
        with self._lock:
            return sorted(self._manifests)

    def block(self, digest: str) -> bytes | None:
        """The block named `digest` (verified on read), None when absent or damaged on disk."""
        check_digest(digest)
        try:
            data = self._block_path(digest).read_bytes()
        except FileNotFoundError:
            return None
        try:
            verify_block(digest, data)
        except BlockIntegrityError:
            return None
        return data
