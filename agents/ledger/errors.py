"""The ledger's rule violations: one exception class per way a ledger object can be refused.

Every class derives from `LedgerError` and `str(err)` is one line; the servicer maps the class
to a gRPC status (`servicer._STATUS`, through `agents.common.status`), so a new class is a new
status decision there (a class it does not name ends the call with INTERNAL).
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every ledger rule violation; `str(err)` is one line."""


class InvalidMetadata(LedgerError):
    """Container metadata outside the accepted ranges."""


class ChainError(LedgerError):
    """A block or chain failed verification.  `height` names the offending block."""

    def __init__(self, height: int, message: str) -> None:
        super().__init__(f"block {height}: {message}")
        self.height = height


class BlockHashMismatch(ChainError):
    """The stored block hash is not the hash of the block's header."""


class MerkleRootMismatch(ChainError):
    """The Merkle root does not match the block's transactions."""


class BrokenLink(ChainError):
    """prev_hash does not name the previous block, or the height is out of sequence."""


class NotAuthority(ChainError):
    """The block names a validator that is not an authority of this chain."""


class BadBlockSignature(ChainError):
    """The validator signature over the block hash does not verify."""


class BadTransaction(ChainError):
    """A transaction inside the block is malformed, badly signed or duplicated."""


class ForkRefused(ChainError):
    """A different block is offered for a height this node already holds."""


class UnknownPeer(LedgerError):
    """A request names a peer identity that this peer host does not host."""


class AdmissionRefused(LedgerError):
    """The validator refuses a submitted transaction (unknown submitter, stale, duplicate)."""


class ConfirmationRefused(LedgerError):
    """A confirmation is badly signed, from an unknown peer, or names an unknown block."""


class ReplayDetected(ConfirmationRefused, AdmissionRefused):
    """A transaction, confirmation or registration that was already seen (a replay)."""


class MembershipFull(LedgerError):
    """The validator already holds its limit of registered nodes; a new one is refused."""
