"""`RaspRelay`: the SMF drives one RASP run between the registry and two node agents.

The SMF is the relay of a migration: it asks the destination to advertise (step 1) and carries
every message to its receiver, which answers with the next one. The messages are end-to-end
authenticated, so the relay (or anybody on the path) can only drop, delay or replay them --
which the receivers refuse -- never forge them. A `tap` sees (and may change or drop) every
message before it is delivered; the adversarial suite uses it as the attacker in the middle.

    relay = RaspRelay(RasClient(ch_ras), EndpointClient(ch_src), EndpointClient(ch_dst))
    hs = relay.handshake("m-1", source=src_id, destination=dst_id, requirement=req,
                         transfer=TransferDescriptor("nms", "reg:5000/nms:1", "", 0))
    ...                                       # container phases between steps 11 and 12
    relay.location_update(hs)                 # step 12: the registry records the location,
                                              # and the source frees the service's ALLOC

The diff-first order splits the handshake around the stop: ``hs = relay.begin(...)`` runs
steps 1-8 before the source stops (the image is not pushed yet), and after the push
``relay.finish(hs, transfer)`` gives the source the pushed image (SetTransfer, accepted once,
before step 10, for the prepared service only) and runs steps 9-11, so M_Trf still carries
the digest the destination checks its pull against. ``handshake`` is ``begin`` + ``finish``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from agents.node.client import EndpointClient
from agents.ras.client import RasClient
from agents.security.crypto import PublicIdentity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import STAGES, Resources, TransferDescriptor

REGISTRY, SOURCE, DESTINATION = "registry", "source", "destination"
RECEIVER = {
    1: SOURCE, 2: REGISTRY, 3: SOURCE, 4: DESTINATION, 5: REGISTRY, 6: DESTINATION,
    7: SOURCE, 8: DESTINATION, 9: SOURCE, 10: DESTINATION, 11: SOURCE, 12: REGISTRY,
}

#: Tap "step" of the registry's release order to the source (after step 12; not a RASP step).
RELEASE_STEP = 13

#: tap(step, receiver role, message) -> message to deliver, or None to drop it.
Tap = Callable[[int, str, bytes], bytes | None]


class RaspAborted(ProtocolError):
    """The relay could not deliver a step (the tap dropped it)."""

    def __init__(self, step: int) -> None:
        super().__init__(ErrorCode.WRONG_STEP, f"RASP step {step} was not delivered")
        self.step = step


@dataclass
class RaspTimings:
    """Per step: the receiver's handling time and the relay's round trip (seconds); per stage
    (1-4, section 4): monotonic wall time of the stage's messages as the relay saw them."""

    handle_s: dict[int, float] = field(default_factory=dict)
    round_trip_s: dict[int, float] = field(default_factory=dict)
    stage_s: dict[int, float] = field(default_factory=dict)
    message_bytes: dict[int, int] = field(default_factory=dict)

    def stage_of(self, step: int) -> int:
        return next(s for s, steps in STAGES.items() if step in steps)


@dataclass
class RaspHandshake:
    """After `RaspRelay.begin`: steps 1-8 done (`step8_reply` is step 9, still to deliver).
    After `finish` (or `handshake`): steps 1-11 done, the destination holds the transfer; step
    12 is still to come. After `RaspRelay.location_update`: the registry's release order for
    the source and its fate."""

    migration_id: str
    session_id: bytes
    timings: RaspTimings
    wall_s: float
    release_order: bytes = b""
    released: bool = False
    release_error: str = ""
    step9: bytes = b""
    finished: bool = False


class RaspRelay:
    """Drives RASP between a registry, a source endpoint (SA) and a destination (CB)."""

    def __init__(self, registry: RasClient, source: EndpointClient,
                 destination: EndpointClient, *, tap: Tap | None = None) -> None:
        self.registry = registry
        self.source = source
        self.destination = destination
        self.tap = tap

    def _send(self, step: int, message: bytes, timings: RaspTimings,
              migration_id: str = "") -> bytes:
        role = RECEIVER[step]
        if self.tap is not None:
            tapped = self.tap(step, role, message)
            if tapped is None:
                raise RaspAborted(step)
            message = tapped
        timings.message_bytes[step] = len(message)
        t0 = time.perf_counter()
        if role == REGISTRY:
            reply, handled = self.registry.deliver(message)
        else:
            client = self.source if role == SOURCE else self.destination
            reply, _, handled = client.deliver(message, migration_id)
        timings.round_trip_s[step] = time.perf_counter() - t0
        timings.handle_s[step] = handled
        if step not in (11, 12) and not reply:
            raise ProtocolError(ErrorCode.WRONG_STEP, f"no reply to RASP step {step}")
        return reply

    def start(self, migration_id: str, *, source: PublicIdentity, destination: PublicIdentity,
              requirement: Resources, transfer: TransferDescriptor) -> tuple[bytes, bytes]:
        """Prepare the source and have the destination advertise: (step 1 bytes, session id)."""
        self.source.prepare_source(migration_id, destination, requirement, transfer)
        return self.destination.advertise(migration_id, source)

    def deliver(self, step: int, message: bytes, migration_id: str = "") -> bytes:
        """Deliver one step to its receiver (through the tap); return the receiver's reply."""
        return self._send(step, message, RaspTimings(), migration_id)

    def begin(self, migration_id: str, *, source: PublicIdentity,
              destination: PublicIdentity, requirement: Resources,
              transfer: TransferDescriptor) -> RaspHandshake:
        """Stages 1-2 and step 8 (the session key): everything that does not depend on the
        pushed image. `transfer` is what the source is prepared with (its service is fixed)."""
        timings = RaspTimings()
        start = t = time.perf_counter()
        m, sid = self.start(migration_id, source=source, destination=destination,
                            requirement=requirement, transfer=transfer)
        m = self._send(1, m, timings, migration_id)
        timings.stage_s[1], t = time.perf_counter() - t, time.perf_counter()
        for step in (2, 3, 4, 5, 6, 7):
            m = self._send(step, m, timings)
        timings.stage_s[2], t = time.perf_counter() - t, time.perf_counter()
        m = self._send(8, m, timings)
        timings.stage_s[3] = time.perf_counter() - t
        return RaspHandshake(migration_id, sid, timings, time.perf_counter() - start, step9=m)

    def finish(self, hs: RaspHandshake, transfer: TransferDescriptor | None = None
               ) -> RaspHandshake:
        """Steps 9-11 of a `begin`-ed handshake. With `transfer`, the source's session first
        learns it (SetTransfer), so step 10's M_Trf carries it; without, the prepared one."""
        if hs.finished or not hs.step9:
            raise ProtocolError(ErrorCode.WRONG_STEP, "handshake is not waiting for step 9")
        start = t = time.perf_counter()
        if transfer is not None:
            self.source.set_transfer(hs.session_id, transfer)
        m = hs.step9
        for step in (9, 10):
            m = self._send(step, m, hs.timings)
        if self._send(11, m, hs.timings):
            raise ProtocolError(ErrorCode.WRONG_STEP, "server answered after step 11")
        now = time.perf_counter()
        hs.timings.stage_s[3] = hs.timings.stage_s.get(3, 0.0) + now - t
        hs.wall_s += now - start
        hs.step9, hs.finished = b"", True
        return hs

    def handshake(self, migration_id: str, *, source: PublicIdentity,
                  destination: PublicIdentity, requirement: Resources,
                  transfer: TransferDescriptor) -> RaspHandshake:
        """Stages 1-3 (steps 1-11): `begin` then `finish` with the prepared transfer."""
        hs = self.begin(migration_id, source=source, destination=destination,
                        requirement=requirement, transfer=transfer)
        return self.finish(hs)

    def location_update(self, handshake: RaspHandshake) -> float:
        """Stage 4 (step 12): the destination tells the registry the new location; then the
        registry's release order goes to the source (`release`). Returns stage 4's seconds."""
        t0 = time.perf_counter()
        m = self.destination.report_location(handshake.session_id)
        handshake.release_order = self._send(12, m, handshake.timings)
        seconds = time.perf_counter() - t0
        handshake.timings.stage_s[4] = seconds
        self.release(handshake)
        return seconds

    def release(self, handshake: RaspHandshake) -> bool:
        """Hand the source the registry's release order (tap step `RELEASE_STEP`); True when
        the source freed the service's allocation. Never raises: the location has already
        moved at the registry, so a failure is only recorded in `handshake.release_error` (the
        source keeps the allocation until the service arrives there again, which replaces it)."""
        order = handshake.release_order
        if not order:
            handshake.release_error = "registry held no allocation of the service at the source"
            return False
        try:
            if self.tap is not None:
                tapped = self.tap(RELEASE_STEP, SOURCE, order)
                if tapped is None:
                    raise RaspAborted(RELEASE_STEP)
                order = tapped
            t0 = time.perf_counter()
            handshake.released, _ = self.source.release(order)
            handshake.timings.round_trip_s[RELEASE_STEP] = time.perf_counter() - t0
        except (ProtocolError, grpc.RpcError) as err:
            handshake.release_error = str(err)
            return False
        handshake.release_error = ""
        return handshake.released
