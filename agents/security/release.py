"""Release orders: how the host a service left learns that it may free the service's ALLOC.

RASP (seed 000, section 4) adds ResSA to Cloud CB's ALLOC when the service arrives (step 10)
and to the RAS table when the new location is reported (step 12), but says nothing about the
host the service left. Here the registry, when it accepts step 12 for service X moving from
host H, moves X's allocation in the RAS table from H's row to the new one and answers step 12
with a *release order* for H: a message of its own protocol ``rasp-release/1``, signed by the
registry (pkR, which every endpoint already pins) and addressed to H, that names X, the RASP
session that brought X to H (the allocation to free) and the session that took it away.

H's endpoint frees X's allocation only when the order

* is signed by the pinned registry key and addressed to H (forged or misdirected: refused),
* is fresh and new (the envelope's freshness window and persistent replay cache: REPLAY),
* names the allocation H actually holds for X (same arrival session id),
* carries H's own transfer ticket for X in the departure session (agents/security/
  transfer_ticket.py): H frees only a service it transferred itself, in that session, to that
  destination -- whatever the destination reported in step 12.

The last check makes a release idempotent and unable to free anything twice: once freed, the
allocation is gone, and an order for an earlier stay of X can never free a later one (a new
arrival has a new session id).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.security.crypto import PublicIdentity
from agents.security.envelope import Endpoint, Envelope, Kind
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.transfer_ticket import TransferTicket, check_ticket

RELEASE_PROTOCOL = "rasp-release/1"
RELEASE_STEP = 1


@dataclass(frozen=True)
class ReleaseOrder:
    """The registry's word that `service` left `host` for `destination`."""

    WIRE_NAME = "rasp.ReleaseOrder"
    service: str
    host: str
    arrival_session: bytes  # RASP session that brought the service to `host` (b"": unknown)
    departure_session: bytes  # RASP session that took it to `destination`
    destination: str
    resources: Resources  # what the registry moved away from `host`
    ticket: TransferTicket  # `host`'s own signed word that it transferred `service` then


class ReleaseIssuer(Endpoint):
    """Registry side: signs release orders."""

    PROTOCOL = RELEASE_PROTOCOL

    def issue(self, order: ReleaseOrder) -> Envelope:
        hdr = self._header(session_id=order.departure_session, step=RELEASE_STEP,
                           receiver=order.host, kind=Kind.SIGNED)
        return self._signed(hdr, order)


class ReleaseReceiver(Endpoint):
    """Endpoint side: authenticates a release order (records nothing until `commit`)."""

    PROTOCOL = RELEASE_PROTOCOL

    def open(self, message: bytes, registry: PublicIdentity) -> tuple[Envelope, ReleaseOrder]:
        env = self._screen(message, session_id=None, steps={RELEASE_STEP: Kind.SIGNED})
        if env.header.sender != registry.name:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED, "only the registry may order a release")
        order = self._open(env, ReleaseOrder, sender=registry)
        if order.host != self.name:
            raise ProtocolError(ErrorCode.WRONG_RECIPIENT, "release order is for another host")
        if order.departure_session != env.header.session_id:
            raise ProtocolError(ErrorCode.WRONG_SESSION, "order names another session")
        check_ticket(order.ticket, self.identity.public, session_id=order.departure_session,
                     cloud=order.destination, service=order.service)
        return env, order

    def commit(self, env: Envelope) -> None:
        self._commit(env)
