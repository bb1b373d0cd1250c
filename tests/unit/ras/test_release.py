"""Per-service allocation: the registry moves a service's allocation at step 12 and orders the
host it left to free it; FREE stays right over many back-and-forth migrations and restarts;
forged, misdirected, replayed and stale release orders free nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agents.common.store import Store, dump
from agents.node.rasp_core import EndpointCore
from agents.ras.domain import RegistryCore
from agents.security.crypto import Identity
from agents.security.encoding import decode_as
from agents.security.envelope import Envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources, TransferDescriptor
from agents.security.release import ReleaseIssuer, ReleaseOrder
from agents.security.stores import InMemoryReplayCache
from agents.security.transfer_ticket import issue_ticket

# network fits four services only: without releases the fifth arrival is refused
MAX = Resources(4000, 4096, 10_000, 40)
NEED = Resources(500, 256, 1000, 10)
HOSTS = ("edge1", "edge2")


@dataclass
class Run:
    session_id: bytes
    order: bytes | None


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.reg_id = Identity.generate("registry")
        self.ids = {n: Identity.generate(n) for n in HOSTS}
        self.open()
        for ident in self.ids.values():
            self.registry.register_cloud(ident.public, MAX)
            self.registry.register_server(ident.public)
        self.count = 0

    def open(self) -> None:
        self.stores = {n: Store.open(self.root / f"{n}.sqlite3") for n in ("registry", *HOSTS)}
        self.registry = RegistryCore(self.reg_id, self.stores["registry"])
        self.ep = {n: EndpointCore(i, registry=self.reg_id.public, store=self.stores[n],
                                   maximum=MAX) for n, i in self.ids.items()}

    def reopen(self) -> None:
        for s in self.stores.values():
            s.close()
        self.open()

    def handshake(self, src_name: str, dst_name: str, service: str = "nms",
                  until: int = 11) -> bytes:
        """Steps 1..`until` (<= 11) from src to dst; the session id."""
        self.count += 1
        mid = f"m{self.count}"
        src, dst, reg = self.ep[src_name], self.ep[dst_name], self.registry
        src.prepare_source(mid, dst.public, NEED,
                           TransferDescriptor(service, "reg/nms:1", "sha256:00", 5))
        m, sid = dst.advertise(src.public)
        for step in range(1, until + 1):
            reply: bytes | None
            if step in (2, 5):
                reply, _ = reg.deliver(m)
            else:
                party = src if step in (1, 3, 7, 9, 11) else dst
                reply, _, _ = party.deliver(m, mid if step == 1 else "")
            if step < 11:
                assert reply is not None
                m = reply
        return sid

    def migrate(self, src: str, dst: str, *, release: bool = True) -> Run:
        sid = self.handshake(src, dst)
        order, _ = self.registry.deliver(self.ep[dst].report_location(sid))
        if release and order is not None:
            freed, parsed = self.ep[src].release(order)
            assert freed and parsed.service == "nms"
        return Run(sid, order)

    def state(self) -> tuple[object, ...]:
        t = self.registry.table
        return (
            {n: self.ep[n].free() for n in HOSTS},
            {n: t.free_of(n) for n in HOSTS},
            dict(t.allocations),
            {s: (a.cloud, a.allocated) for s, a in t.services.items()},
            t.locations,
        )


def expected(at: str, came_from: str) -> tuple[object, ...]:
    used = Resources(*(m - n for m, n in zip(MAX.values(), NEED.values(), strict=True)))
    free = {n: used if n == at else MAX for n in HOSTS}
    return (free, free, {(came_from, at): NEED}, {"nms": (at, NEED)}, {"nms": at})


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_many_back_and_forth_migrations_keep_free_constant(world: World) -> None:
    here, there = "edge1", "edge2"
    for i in range(14):  # 4 arrivals per host would exhaust MAX.network without releases
        run = world.migrate(here, there)
        assert (run.order is None) == (i == 0)  # the first stay on edge1 was not by RASP
        assert world.state() == expected(there, here), i
        here, there = there, here
    assert world.ep["edge1"].arrivals["nms"].session_id == run.session_id


def test_restart_between_migrations_keeps_per_service_allocations(world: World) -> None:
    here, there = "edge1", "edge2"
    for i in range(12):
        run = world.migrate(here, there, release=False)
        world.reopen()  # registry and both endpoints restart before the release arrives
        if run.order is not None:
            freed, _ = world.ep[here].release(run.order)
            assert freed
        world.reopen()
        assert world.state() == expected(there, here), i
        here, there = there, here


def test_replayed_release_is_refused_and_frees_nothing(world: World) -> None:
    world.migrate("edge1", "edge2")
    run = world.migrate("edge2", "edge1", release=False)
    assert run.order is not None
    freed, _ = world.ep["edge2"].release(run.order)
    assert freed
    before = dump(world.ep["edge2"].store)
    with pytest.raises(ProtocolError) as err:
        world.ep["edge2"].release(run.order)
    assert err.value.code is ErrorCode.REPLAY
    world.reopen()
    with pytest.raises(ProtocolError) as err:  # the replay cache is persistent
        world.ep["edge2"].release(run.order)
    assert err.value.code is ErrorCode.REPLAY
    assert world.ep["edge2"].free() == MAX
    assert dump(world.ep["edge2"].store) == before


def test_an_order_for_an_earlier_stay_never_frees_a_later_one(world: World) -> None:
    world.migrate("edge1", "edge2")
    away = world.migrate("edge2", "edge1", release=False)  # order held back by an attacker
    assert away.order is not None
    world.migrate("edge1", "edge2", release=False)  # nms arrives on edge2 again (replaces)
    assert world.ep["edge2"].allocated == NEED  # replaced, not doubled
    freed, _ = world.ep["edge2"].release(away.order)  # authentic but stale
    assert not freed
    assert world.ep["edge2"].allocated == NEED


def _forged(order: ReleaseOrder, signer: Identity) -> bytes:
    return ReleaseIssuer(signer, replay=InMemoryReplayCache()).issue(order).to_bytes()


def test_unauthorised_or_misdirected_release_is_refused(world: World) -> None:
    world.migrate("edge1", "edge2")
    run = world.migrate("edge2", "edge1", release=False)
    assert run.order is not None
    genuine = Envelope.from_bytes(run.order)
    ep = world.ep["edge2"]
    order = ReleaseOrder("nms", "edge2", ep.arrivals["nms"].session_id, run.session_id,
                         "edge1", NEED, decode_as(ReleaseOrder, genuine.body).ticket)
    before = ep.snapshot()
    registry = ReleaseIssuer(world.reg_id, replay=InMemoryReplayCache())
    cases = [
        # another principal (the SMF, another host) cannot order a release
        (ErrorCode.NOT_AUTHORISED, _forged(order, Identity.generate("smf"))),
        (ErrorCode.NOT_AUTHORISED, _forged(order, world.ids["edge1"])),
        # the registry's name with another key
        (ErrorCode.BAD_SIGNATURE, _forged(order, Identity.generate("registry"))),
        # registry-signed, but for edge1 (delivered to edge2) / naming edge1 inside
        (ErrorCode.WRONG_RECIPIENT,
         registry.issue(replace(order, host="edge1")).to_bytes()),
        # registry-signed, but for a service this host did not transfer in that session
        # (its own ticket names nms): a source frees only what it transferred itself
        (ErrorCode.NOT_AUTHORISED,
         registry.issue(replace(order, service="other")).to_bytes()),
        (ErrorCode.NOT_AUTHORISED, registry.issue(replace(order, ticket=issue_ticket(
            world.ids["edge1"], session_id=run.session_id, cloud="edge1",
            service="nms"))).to_bytes()),
        (ErrorCode.BAD_SIGNATURE, registry.issue(replace(order, ticket=replace(
            issue_ticket(world.ids["edge1"], session_id=run.session_id, cloud="edge1",
                         service="nms"), server="edge2"))).to_bytes()),
        # the genuine order with its body changed
        (ErrorCode.BAD_SIGNATURE,
         Envelope(genuine.header, genuine.body + b"x", genuine.signature).to_bytes()),
    ]
    for code, message in cases:
        with pytest.raises(ProtocolError) as err:
            ep.release(message)
        assert err.value.code is code, (code, err.value)
        assert ep.snapshot() == before
    assert ep.release(run.order)[0]  # the genuine order still works afterwards


def test_attempt_aborted_after_step_10_is_replaced_by_the_retry(world: World) -> None:
    world.handshake("edge1", "edge2")  # steps 1-11, then the SMF aborted (no step 12)
    assert world.ep["edge2"].allocated == NEED
    run = world.migrate("edge1", "edge2")  # the retry to the same destination
    assert world.ep["edge2"].allocated == NEED
    assert world.state() == expected("edge2", "edge1")
    assert run.order is None
