"""Where a block comes from: the local cache, else a neighbour edge, else the origin (cloud),
every fetched copy verified by its hash (seed 004, sections 3-4; issue 14's lookup order).

A corrupt copy (hash mismatch) is counted, discarded and the next source tried; nothing corrupt
is ever returned or cached. A fetcher that fails (raises) is treated as not having the block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agents.common.compat import StrEnum
from agents.sso.blocks import BlockIntegrityError, FileManifest, verify_block
from agents.sso.cache import BlockCache

#: (file_id, digest, index) -> the block's bytes, or None when the source does not have it
Fetcher = Callable[[str, str, int], bytes | None]


class Source(StrEnum):
    """Which tier answered."""

    LOCAL = "local"
    NEIGHBOUR = "neighbour"
    ORIGIN = "origin"


@dataclass
class Resolution:
    """A verified block and how it was found: `tried` names every source asked, in order
    ("local", the neighbours' names, "origin"); `notes` says what each answered."""

    data: bytes
    source: Source
    tried: list[str]
    rejected_corrupt: int
    source_name: str = ""
    notes: list[str] = field(default_factory=list)


def _ask(name: str, fetch: Fetcher, file_id: str, digest: str, index: int,
         notes: list[str]) -> tuple[bytes | None, bool]:
    """(verified bytes or None, whether a corrupt copy was rejected)."""
    try:
        data = fetch(file_id, digest, index)
    except Exception as err:  # a failing source must not stop the lookup: note it, go on
        notes.append(f"{name}: failed ({type(err).__name__}: {err})")
        return None, False
    if data is None:
        notes.append(f"{name}: not held")
        return None, False
    try:
        verify_block(digest, data)
    except BlockIntegrityError as err:
        notes.append(f"{name}: corrupt, rejected ({err})")
        return None, True
    notes.append(f"{name}: ok")
    return data, False


def resolve(file_id: str, index: int, digest: str, cache: BlockCache,
            neighbours: Sequence[tuple[str, Fetcher]], origin: Fetcher,
            manifest: FileManifest | None = None) -> Resolution:
    """Find block `index` of `file_id` named `digest`: local cache (one counted request), then
    each neighbour in order, then the origin, verifying every copy. With `manifest`, a block
    found elsewhere is admitted to `cache`. Raises `BlockIntegrityError` when only corrupt
    copies were found and `LookupError` when no source had the block."""
    tried = ["local"]
    notes: list[str] = []
    rejected = 0
    local = cache.lookup(file_id, index, digest)
    if isinstance(local, bytes):
        try:
            verify_block(digest, local)
            notes.append("local: hit")
            return Resolution(local, Source.LOCAL, tried, 0, "local", notes)
        except BlockIntegrityError as err:
            rejected += 1
            notes.append(f"local: corrupt, rejected ({err})")
    else:
        notes.append("local: miss" if local is None else "local: size-only entry, no bytes")
    sources = [(n, f, Source.NEIGHBOUR) for n, f in neighbours]
    sources.append(("origin", origin, Source.ORIGIN))
    for name, fetch, kind in sources:
        tried.append(name)
        data, corrupt = _ask(name, fetch, file_id, digest, index, notes)
        rejected += corrupt
        if data is not None:
            if manifest is not None:
                cache.admit(manifest, index, data)
            return Resolution(data, kind, tried, rejected, name, notes)
    where = f"block {index} of {file_id!r} ({digest[:16]}...)"
    detail = "; ".join(notes)
    if rejected:
        raise BlockIntegrityError(f"{where}: no valid copy, {rejected} corrupt copies rejected "
                                  f"[{detail}]")
    raise LookupError(f"{where}: no source holds it [{detail}]")
