"""Authenticated protocol envelopes shared by RASP and SSP.

Every message is an `Envelope` = `Header` + body + signature, canonically encoded:

- `Kind.SIGNED`  body = payload in clear, signature by the sender (Ed25519);
- `Kind.SEALED`  body = payload sealed to the receiver's X25519 key, signature by the sender;
- `Kind.SESSION` body = AES-256-GCM under the session key; no signature (the key authenticates).

The header (protocol, session id, step, sequence number, sender, receiver, random message id,
send time) is the associated data of every encryption and is covered by every signature, so a
message cannot be moved to another session, step, slot or direction, nor re-addressed.

Receivers run the checks in a fixed order and only *record* anything (replay cache, state)
after every check has passed: protocol/version -> reflection (sender is me) -> recipient ->
freshness window -> session -> replay cache -> step -> kind -> sender key + signature ->
decryption -> payload decoding -> role-specific checks (nonces, certificates...) -> commit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from agents.security import encoding
from agents.security.crypto import Identity, PublicIdentity, SessionCipher, new_nonce
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.stores import ReplayCache

T = TypeVar("T")

_SIGN_LABEL = b"edgeferry/envelope-signature/v1"
_AAD_LABEL = b"edgeferry/envelope-aad/v1"
DEFAULT_MAX_SKEW_S = 120.0
#: Largest envelope any RASP/SSP step produces is a few KiB; anything above this bound is
#: refused on its length alone, before decoding (a decodable 4 MiB list cost 1.7 s of CPU).
MAX_ENVELOPE_BYTES = 64 * 1024


class Kind(IntEnum):
    SIGNED = 1
    SEALED = 2
    SESSION = 3


@dataclass(frozen=True)
class Header:
    WIRE_NAME = "Header"

    protocol: str  # "rasp/1" or "ssp/1"
    session_id: bytes
    step: int
    seq: int  # 0 unless a step repeats (SSP service requests)
    sender: str
    receiver: str
    msg_id: bytes  # 128 random bits
    sent_at_ms: int
    kind: Kind

    def aad(self) -> bytes:
        return _AAD_LABEL + encoding.encode(self)


@dataclass(frozen=True)
class Envelope:
    WIRE_NAME = "Envelope"

    header: Header
    body: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return encoding.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return encoding.decode_as(cls, data)

    def signed_bytes(self) -> bytes:
        return _SIGN_LABEL + encoding.encode([self.header, self.body])

    def digest(self) -> bytes:
        """Replay-cache key: covers header and body (not the signature)."""
        return hashlib.sha256(encoding.encode([self.header, self.body])).digest()


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


def parse_envelope(message: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Decode envelope bytes (MALFORMED for anything that is not one); LIMIT_REACHED, without
    decoding anything, for more than ``max_bytes``."""
    if not message:
        raise _err(ErrorCode.MALFORMED, "empty message")
    if len(message) > max_bytes:
        raise _err(ErrorCode.LIMIT_REACHED,
                   f"envelope of {len(message)} bytes exceeds the {max_bytes}-byte bound")
    return Envelope.from_bytes(bytes(message))


class Endpoint:
    """One party's side of a protocol: builds outgoing envelopes and screens incoming ones."""

    PROTOCOL = ""

    def __init__(
        self,
        identity: Identity,
        *,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
    ) -> None:
        self.identity = identity
        self.name = identity.name
        self._replay = replay
        self._clock = clock
        self._max_skew_ms = round(max_skew_s * 1000)
        self.timings_ns: dict[int, int] = {}  # step handled/produced -> ns spent here

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- outgoing ----------------------------------------------------------------------------

    def _header(
        self, *, session_id: bytes, step: int, receiver: str, kind: Kind, seq: int = 0
    ) -> Header:
        return Header(
            protocol=self.PROTOCOL,
            session_id=session_id,
            step=step,
            seq=seq,
            sender=self.name,
            receiver=receiver,
            msg_id=new_nonce(),
            sent_at_ms=self.now_ms(),
            kind=kind,
        )

    def _signed(self, header: Header, payload: Any) -> Envelope:
        unsigned = Envelope(header, encoding.encode(payload), b"")
        return Envelope(header, unsigned.body, self.identity.sign(unsigned.signed_bytes()))

    def _sealed(self, header: Header, payload: Any, to: PublicIdentity) -> Envelope:
        body = to.seal(encoding.encode(payload), header.aad())
        unsigned = Envelope(header, body, b"")
        return Envelope(header, body, self.identity.sign(unsigned.signed_bytes()))

    @staticmethod
    def _session(header: Header, payload: Any, cipher: SessionCipher) -> Envelope:
        return Envelope(header, cipher.encrypt(encoding.encode(payload), header.aad()), b"")

    # -- incoming ----------------------------------------------------------------------------

    def _screen(
        self,
        message: bytes | Envelope,
        *,
        session_id: bytes | None,
        steps: Mapping[int, Kind],
    ) -> Envelope:
        """Cheap checks that need no keys. Raises ProtocolError; records nothing."""
        env = message if isinstance(message, Envelope) else Envelope.from_bytes(message)
        h = env.header
        if h.protocol != self.PROTOCOL:
            raise _err(ErrorCode.MALFORMED, f"not a {self.PROTOCOL} message")
        if h.sender == self.name:
            raise _err(ErrorCode.REFLECTED, "message claims to come from this party")
        if h.receiver != self.name:
            raise _err(ErrorCode.WRONG_RECIPIENT, f"message is addressed to {h.receiver!r}")
        if abs(self.now_ms() - h.sent_at_ms) > self._max_skew_ms:
            raise _err(ErrorCode.EXPIRED, "message is outside the freshness window")
        if session_id is not None and h.session_id != session_id:
            raise _err(ErrorCode.WRONG_SESSION, "message belongs to another session")
        if self._replay.seen(env.digest()):
            raise _err(ErrorCode.REPLAY, "message was already accepted")
        if h.step not in steps:
            raise _err(
                ErrorCode.WRONG_STEP, f"step {h.step} not expected (expecting {sorted(steps)})"
            )
        if h.kind is not steps[h.step]:
            raise _err(ErrorCode.MALFORMED, f"step {h.step} must be {steps[h.step].name}")
        return env

    def _open(
        self,
        env: Envelope,
        cls: type[T],
        *,
        sender: PublicIdentity | None = None,
        self_asserted: Callable[[T], PublicIdentity] | None = None,
        cipher: SessionCipher | None = None,
    ) -> T:
        """Authenticate and decrypt `env` into a `cls` payload. Records nothing.

        `sender`: the key we already trust for header.sender (None: unknown principal).
        `self_asserted`: for the steps where the paper has the sender's key arrive inside the
        message (to be certified later by the registry); the signature must verify under it.
        """
        h = env.header
        if sender is not None and sender.name != h.sender:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"{h.sender!r} is not the expected peer")
        if h.kind is Kind.SESSION:
            if cipher is None:
                raise _err(ErrorCode.WRONG_STEP, "no session key established yet")
            return encoding.decode_as(cls, cipher.decrypt(env.body, h.aad()))
        if sender is not None:
            sender.verify(env.signed_bytes(), env.signature)
        elif self_asserted is None:
            raise _err(ErrorCode.UNKNOWN_PRINCIPAL, f"no key known for {h.sender!r}")
        plain = self.identity.open_sealed(env.body, h.aad()) if h.kind is Kind.SEALED else env.body
        payload = encoding.decode_as(cls, plain)
        if sender is None and self_asserted is not None:
            claimed = self_asserted(payload)
            if claimed.name != h.sender:
                raise _err(ErrorCode.UNKNOWN_PRINCIPAL, "embedded key belongs to someone else")
            claimed.verify(env.signed_bytes(), env.signature)
        return payload

    def _commit(self, env: Envelope) -> None:
        """Record an accepted message in the replay cache (call only after all checks)."""
        until = env.header.sent_at_ms + self._max_skew_ms
        if not self._replay.remember(env.digest(), until):
            raise _err(ErrorCode.REPLAY, "message was already accepted")


class StepTimer:
    """Records monotonic ns spent in one step into `timings`."""

    def __init__(self, timings: dict[int, int], step: int) -> None:
        self._timings = timings
        self._step = step
        self._t0 = 0

    def __enter__(self) -> StepTimer:
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._timings[self._step] = time.perf_counter_ns() - self._t0
