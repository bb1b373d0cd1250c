"""Transfer tickets: what ties RASP step 12 (and the release order after it) to step 10's transfer.

In the paper, step 12 is "SB -> R: aenc((SB, CB), pkR)": the destination names the service that
now runs on it, and nothing ties that name to the service the source moved in step 10. A
compromised destination could therefore finish an honest migration of service A and report
service B instead: the registry moved B's allocation and ordered B's host to free B's resources
while B still ran there.

The fix: in step 10 Server SA also sends a *transfer ticket*, its Ed25519 signature over
(label, session id, server, cloud, service). Cloud CB checks it (it knows SA's certified key since
step 6) and forwards it in step 12; the registry verifies it with SA's registered key and accepts
step 12 only for the ticket's service, session, server and cloud. The registry copies the ticket
into the release order, and the source frees an allocation only for the service its own ticket
names (it checks its own signature), so even a registry fooled some other way cannot make a
source free a service it did not transfer.

The ticket needs no new state anywhere: it is bound to one RASP session (whose step 12 the
registry accepts once) and to one release order (replay cache of the source).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.security import encoding
from agents.security.crypto import Identity, PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError

_LABEL = b"edgeferry/rasp/transfer-ticket/v1"
SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class TransferTicket:
    """Server SA's signed statement: in RASP session `session_id` it transferred `service` to
    `cloud`."""

    WIRE_NAME = "rasp.TransferTicket"
    session_id: bytes
    server: str
    cloud: str
    service: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        """What the signature covers (everything but the signature, under a label)."""
        return _LABEL + encoding.encode([self.session_id, self.server, self.cloud, self.service])


def issue_ticket(server: Identity, *, session_id: bytes, cloud: str, service: str
                 ) -> TransferTicket:
    """Server SA signs the ticket for the service it transfers in `session_id` to `cloud`."""
    unsigned = TransferTicket(bytes(session_id), server.name, cloud, service, b"")
    return TransferTicket(unsigned.session_id, unsigned.server, cloud, service,
                          server.sign(unsigned.signed_bytes()))


def check_ticket(ticket: TransferTicket, server: PublicIdentity, *, session_id: bytes,
                 cloud: str, service: str) -> None:
    """Raise ProtocolError unless `ticket` is `server`'s signature over exactly this session,
    cloud and service (NOT_AUTHORISED for another service/session/party, BAD_SIGNATURE for a
    signature that does not verify)."""
    if ticket.server != server.name:
        raise ProtocolError(ErrorCode.NOT_AUTHORISED, "transfer ticket of another server")
    if ticket.session_id != bytes(session_id):
        raise ProtocolError(ErrorCode.NOT_AUTHORISED, "transfer ticket of another session")
    if ticket.cloud != cloud:
        raise ProtocolError(ErrorCode.NOT_AUTHORISED, "transfer ticket for another cloud")
    if ticket.service != service:
        raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                            "step 12 names a service this session did not transfer")
    if len(ticket.signature) != SIGNATURE_SIZE:
        raise ProtocolError(ErrorCode.BAD_SIGNATURE, "transfer ticket signature is malformed")
    server.verify(ticket.signed_bytes(), ticket.signature)
