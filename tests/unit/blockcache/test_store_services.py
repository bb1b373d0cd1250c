"""The origin's on-disk block store and the edge's transformations (agents/blockcache/)."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from agents.blockcache import services
from agents.blockcache.store import OriginStore, StoreFull

DATA = bytes(range(256)) * 40 + b"tail"  # 10244 bytes: 2 full 4096-byte blocks + 2052


def test_a_file_is_stored_as_content_addressed_blocks_and_survives_a_restart(
        tmp_path: Path) -> None:
    store = OriginStore(tmp_path)
    manifest = store.put("file-a", DATA, 4096)
    chunks = [DATA[:4096], DATA[4096:8192], DATA[8192:]]
    assert manifest.blocks == tuple(hashlib.sha256(c).hexdigest() for c in chunks)
    assert manifest.size == len(DATA)
    again = OriginStore(tmp_path)  # a restarted agent reads what is on disk
    assert again.manifest("file-a") == manifest
    assert [again.block(d) for d in manifest.blocks] == chunks
    assert again.files() == ["file-a"]


def test_a_block_damaged_on_disk_is_not_served(tmp_path: Path) -> None:
    store = OriginStore(tmp_path)
    digest = store.put("file-a", DATA, 4096).blocks[1]
    path = tmp_path / "blocks" / digest[:2] / digest
    assert store.block(digest) == DATA[4096:8192]
    path.write_bytes(b"\xee" + DATA[4097:8192])
    assert store.block(digest) is None
    assert store.block("0" * 64) is None


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 129, ".."])
def test_file_ids_that_could_escape_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        OriginStore(tmp_path).put(bad, DATA, 4096)
    with pytest.raises(ValueError):
        OriginStore(tmp_path).block("../" + "0" * 61)


def test_store_bounds(tmp_path: Path) -> None:
    store = OriginStore(tmp_path, max_files=1, max_bytes=len(DATA) + 10)
    store.put("file-a", DATA, 4096)
    with pytest.raises(StoreFull):
        store.put("file-b", b"other", 4096)
    store.put("file-a", DATA, 4096)  # replacing a stored file with the same blocks fits
    other = OriginStore(tmp_path / "o", max_files=5, max_bytes=5000)
    with pytest.raises(StoreFull):
        other.put("big", DATA, 4096)
    assert other.files() == []


def test_transformations_match_their_definitions() -> None:
    assert services.apply("transcode", DATA) == zlib.compress(DATA, 9)
    assert zlib.decompress(services.apply("transcode", DATA)) == DATA
    assert services.apply("filter", b"\x00\x5a\xff") == b"\x5a\x00\xa5"
    assert services.apply("filter", services.apply("filter", DATA)) == DATA
    merged = services.apply("subtitle-merge", b"movie")
    assert merged.startswith(b"movie") and b"subtitles (en)" in merged
    assert services.apply("audio-enhance", b"abc") == b"cba"
    with pytest.raises(services.UnknownService, match="teleport"):
        services.apply("teleport", DATA)


def test_the_edge_agent_does_not_load_pm4py() -> None:
    """Edge hosts get a wheelhouse without pm4py (the catalog gives it to the composer only):
    starting the blockcache agent must not import it (nor its numeric stack); the composer's
    first composition does (positive control)."""
    import subprocess
    import sys

    probe = ("import sys, agents.blockcache.__main__; "
             "print(sorted(m for m in ('pm4py', 'numpy', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
    control = ("import sys; from agents.sso.wfnet import parse_process; parse_process('filter'); "
               "print('pm4py' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", control], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
