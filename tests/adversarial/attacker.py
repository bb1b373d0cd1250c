"""The attacker in the middle: operations on recorded protocol messages, and case bookkeeping.

Every operation works on the canonical envelope bytes that travel between real agents; what it
cannot do is produce a valid signature, sealed box or AEAD ciphertext for a key it lacks.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.common.status import RemoteProtocolError
from agents.security.crypto import Identity, SessionCipher
from agents.security.envelope import Envelope, Kind
from agents.security.errors import ProtocolError

MALLORY = Identity.generate("mallory")


def flip_body(message: bytes) -> bytes:
    """Flip the last bit of the body (ciphertext or clear payload)."""
    env = Envelope.from_bytes(message)
    body = bytearray(env.body)
    body[-1] ^= 0x01
    return dataclasses.replace(env, body=bytes(body)).to_bytes()


def shift_header(message: bytes) -> bytes:
    """Change an authenticated header field (send time + 1 ms)."""
    env = Envelope.from_bytes(message)
    header = dataclasses.replace(env.header, sent_at_ms=env.header.sent_at_ms + 1)
    return dataclasses.replace(env, header=header).to_bytes()


def forge(message: bytes) -> bytes:
    """Inject: the same header (fresh message id) with the attacker's own signature, or for
    session messages a body encrypted under a key of the attacker's choosing."""
    env = Envelope.from_bytes(message)
    header = dataclasses.replace(env.header, msg_id=secrets.token_bytes(16))
    if env.header.kind is Kind.SESSION:
        body = SessionCipher(secrets.token_bytes(32)).encrypt(b"\x07\x00\x00\x00\x00",
                                                              header.aad())
        return Envelope(header, body, b"").to_bytes()
    unsigned = Envelope(header, env.body, b"")
    return Envelope(header, env.body, MALLORY.sign(unsigned.signed_bytes())).to_bytes()


@dataclass
class CaseLog:
    """Counts adversarial cases: every case must end rejected with the expected code.

    Counted apart by where the refusal happened: `sent` cases reached a running agent, which
    refused them (a protocol error code in its answer, a refused TLS handshake, a failed
    migration); `in_process` cases were delivered to the honest application, which runs in the
    test process and refused them there; `local` cases were refused before anything was sent
    (e.g. a bit flip that no longer decodes)."""

    sent: int = 0
    in_process: int = 0
    local: int = 0
    accepted: list[str] = field(default_factory=list)
    by_code: dict[str, int] = field(default_factory=dict)

    @property
    def tried(self) -> int:
        return self.sent + self.in_process + self.local

    def run(self, name: str, attack: Callable[[], Any], expected: str | set[str],
            snapshot: Callable[[], object],
            captured: Callable[[], object] | None = None) -> str:
        """Run `attack`; it must raise a protocol refusal with the expected code and leave
        `snapshot()` (every honest party's state, memory and disk) unchanged. A
        snapshot taken by the attack itself (`captured()`), when honest steps precede the
        attacked one inside the same call. A refusal from an agent counts as sent, one
        raised in this process (a ProtocolError that is no RemoteProtocolError: the in-process
        application refused it) as in_process."""
        wanted = {expected} if isinstance(expected, str) else set(expected)
        before = snapshot() if captured is None else None
        try:
            attack()
        except RemoteProtocolError as exc:
            code = str(exc.code)
            self.sent += 1
        except ProtocolError as exc:
            code = str(exc.code)
            self.in_process += 1
        else:
            self.sent += 1
            self.accepted.append(name)
            raise AssertionError(f"{name}: the attack was accepted")
        self.by_code[code] = self.by_code.get(code, 0) + 1
        assert code in wanted, f"{name}: refused with {code}, expected {sorted(wanted)}"
        if captured is not None:
            before = captured()
        after = snapshot()
        assert after == before, f"{name}: an honest party's state changed"
        return code

    def count_only(self, name: str, rejected: bool, *, sent: bool) -> None:
        """Count a case judged by the test itself; `sent`: whether it reached an agent (else
        it was refused before sending)."""
        if sent:
            self.sent += 1
        else:
            self.local += 1
        if not rejected:
            self.accepted.append(name)


CASES = CaseLog()
