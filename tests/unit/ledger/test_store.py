"""SQLite ledger store: durable, re-verified on open, tamper-evident; key files 0600."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from agents.ledger.codec import block_to_json
from agents.ledger.errors import BrokenLink, ChainError, LedgerError
from agents.ledger.store import LedgerStore, MemberRow, StoreCorrupt, load_or_create_key
from tests.unit.ledger.helpers import World
from tests.unit.ledger.test_chain import _mutations


def _stored_world(path: Path, blocks: int = 3) -> World:
    w = World()
    w.grow(blocks)
    store = LedgerStore(path)
    for b in w.chain.blocks:
        store.append_block("validator", b)
    store.close()
    return w


def test_chain_survives_reopen_and_is_reverified(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    w = _stored_world(db)
    store = LedgerStore(db)
    chain = store.load_chain("validator", w.authorities)
    assert chain.blocks == w.chain.blocks
    assert store.owners() == ["validator"]
    assert store.size_bytes() == sum(len(block_to_json(b)) for b in w.chain.blocks)
    assert store.load_chain("somebody-else", w.authorities).height == -1
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_every_single_field_edit_on_disk_is_caught_on_open(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    w = _stored_world(db, blocks=2)
    spare = json.loads(block_to_json(w.next_block(1)))["transactions"][0]
    original = block_to_json(w.chain.blocks[1])
    mutations = _mutations(original, spare)
    assert len(mutations) > 40
    for path, tampered in mutations:
        with sqlite3.connect(db) as raw:
            raw.execute("UPDATE blocks SET body = ? WHERE height = 1", (tampered,))
        store = LedgerStore(db)
        with pytest.raises(ChainError):
            store.load_chain("validator", w.authorities)
        store.close()
        with sqlite3.connect(db) as raw:
            raw.execute("UPDATE blocks SET body = ? WHERE height = 1", (original,))
        del path
    assert LedgerStore(db).load_chain("validator", w.authorities).height == 2


def test_row_level_tampering_is_caught(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    w = _stored_world(db, blocks=3)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE blocks SET body = 'not json' WHERE height = 2")
    with pytest.raises(StoreCorrupt, match="block 2"):
        LedgerStore(db).load_chain("validator", w.authorities)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE blocks SET body = ? WHERE height = 2",
                    (block_to_json(w.chain.blocks[2]),))
        raw.execute("DELETE FROM blocks WHERE height = 1")
    with pytest.raises(BrokenLink, match="expected height 1"):
        LedgerStore(db).load_chain("validator", w.authorities)


def test_counters_and_members_persist(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    store = LedgerStore(db, durable=False)
    store.set_counter("p1", "conf_seq", 7)
    store.set_counter("p1", "conf_seq", 9)
    store.save_member(MemberRow("p1", b"k" * 32, "peer", "127.0.0.1:1", "cn=host", 3, -1, 0))
    store.save_confirmation("p1", 4, 11)
    store.close()
    store = LedgerStore(db)
    assert store.get_counter("p1", "conf_seq") == 9
    assert store.get_counter("p2", "conf_seq", default=-5) == -5
    (row,) = store.members()
    assert (row.node_id, row.public_key, row.confirmed_height, row.conf_seq) == ("p1", b"k" * 32,
                                                                                 4, 11)


def test_key_files_are_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "validator.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key(path)
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    os.chmod(path, 0o644)
    with pytest.raises(LedgerError, match="chmod 600"):
        load_or_create_key(path)
