"""Small builders shared by the ledger unit tests."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.ledger.chain import Block, Chain, genesis_block, seal_block
from agents.ledger.signing import public_key_bytes
from agents.ledger.transactions import ContainerMetadata, Transaction, sign_transaction

NOW_MS = 1_800_000_000_000


def metadata(i: int = 0, **overrides: object) -> ContainerMetadata:
    fields: dict[str, object] = {
        "source_ip": "10.10.0.11",
        "container_id": f"c{i:04d}",
        "total_size": 264_000_000 + i,
        "gpu_usage": 250,
        "cpu_usage": 1500,
        "type": "image-recognition",
    }
    fields.update(overrides)
    return ContainerMetadata(**fields)  # type: ignore[arg-type]


class World:
    """A validator key, a submitter key and a helper to grow a verified chain."""

    def __init__(self) -> None:
        self.validator_key = Ed25519PrivateKey.generate()
        self.submitter_key = Ed25519PrivateKey.generate()
        self.authorities = {"validator": public_key_bytes(self.validator_key)}
        self.chain = Chain(self.authorities)
        self.chain.append(genesis_block("validator", self.validator_key, NOW_MS))
        self._i = 0

    def tx(self, **overrides: object) -> Transaction:
        self._i += 1
        return sign_transaction(
            metadata(self._i, **overrides), "edge-1", self.submitter_key, NOW_MS + self._i
        )

    def next_block(self, n_txs: int = 3, key: Ed25519PrivateKey | None = None,
                   validator_id: str = "validator") -> Block:
        head = self.chain.head
        assert head is not None
        return seal_block(
            height=head.height + 1,
            prev_hash=head.block_hash,
            transactions=[self.tx() for _ in range(n_txs)],
            validator_id=validator_id,
            key=key or self.validator_key,
            now_ms=NOW_MS + 1000 * (head.height + 1),
        )

    def grow(self, blocks: int, n_txs: int = 3) -> None:
        for _ in range(blocks):
            self.chain.append(self.next_block(n_txs))
