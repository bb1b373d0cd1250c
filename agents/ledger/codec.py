"""JSON round trip of transactions and blocks: how the stores keep them (`store.py` keeps
block bodies, `central.py` signed records).  Reading refuses anything that is not exactly the
shape written (wrong types included); `block_from_json` raises `LedgerError` for unreadable
text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agents.ledger.chain import Block
from agents.ledger.errors import LedgerError
from agents.ledger.transactions import ContainerMetadata, Transaction


def tx_to_dict(tx: Transaction) -> dict[str, Any]:
    """A transaction as JSON-ready data (bytes as hex)."""
    m = tx.metadata
    return {
        "metadata": {
            "source_ip": m.source_ip,
            "container_id": m.container_id,
            "total_size": m.total_size,
            "gpu_usage": m.gpu_usage,
            "cpu_usage": m.cpu_usage,
            "type": m.type,
        },
        "submitter_id": tx.submitter_id,
        "submitter_key": tx.submitter_key.hex(),
        "nonce": tx.nonce.hex(),
        "timestamp_ms": tx.timestamp_ms,
        "signature": tx.signature.hex(),
    }


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _str(d: Mapping[str, Any], key: str) -> str:
    value = d[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return value


def _hex(d: Mapping[str, Any], key: str) -> bytes:
    return bytes.fromhex(_str(d, key))


def tx_from_dict(d: Mapping[str, Any]) -> Transaction:
    """The transaction `tx_to_dict` wrote (KeyError / ValueError for anything else)."""
    m = d["metadata"]
    return Transaction(
        metadata=ContainerMetadata(
            source_ip=_str(m, "source_ip"),
            container_id=_str(m, "container_id"),
            total_size=_int(m, "total_size"),
            gpu_usage=_int(m, "gpu_usage"),
            cpu_usage=_int(m, "cpu_usage"),
            type=_str(m, "type"),
        ),
        submitter_id=_str(d, "submitter_id"),
        submitter_key=_hex(d, "submitter_key"),
        nonce=_hex(d, "nonce"),
        timestamp_ms=_int(d, "timestamp_ms"),
        signature=_hex(d, "signature"),
    )


def block_to_dict(block: Block) -> dict[str, Any]:
    """A block as JSON-ready data (bytes as hex, transactions in order)."""
    return {
        "height": block.height,
        "prev_hash": block.prev_hash.hex(),
        "merkle_root": block.merkle_root.hex(),
        "timestamp_ms": block.timestamp_ms,
        "nonce": block.nonce.hex(),
        "validator_id": block.validator_id,
        "transactions": [tx_to_dict(tx) for tx in block.transactions],
        "block_hash": block.block_hash.hex(),
        "signature": block.signature.hex(),
    }


def block_from_dict(d: Mapping[str, Any]) -> Block:
    """The block `block_to_dict` wrote (KeyError / ValueError for anything else)."""
    txs = d["transactions"]
    if not isinstance(txs, list):
        raise ValueError("transactions must be a list")
    return Block(
        height=_int(d, "height"),
        prev_hash=_hex(d, "prev_hash"),
        merkle_root=_hex(d, "merkle_root"),
        timestamp_ms=_int(d, "timestamp_ms"),
        nonce=_hex(d, "nonce"),
        validator_id=_str(d, "validator_id"),
        transactions=tuple(tx_from_dict(t) for t in txs),
        block_hash=_hex(d, "block_hash"),
        signature=_hex(d, "signature"),
    )


def block_to_json(block: Block) -> str:
    """Compact JSON with sorted keys: the same block always gives the same text."""
    return json.dumps(block_to_dict(block), sort_keys=True, separators=(",", ":"))


def block_from_json(text: str) -> Block:
    """The block `block_to_json` wrote; LedgerError when the text is not one."""
    try:
        return block_from_dict(json.loads(text))
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"stored block is not readable: {exc}") from exc
