"""RegistryCore and EndpointCore without gRPC: a full RASP run in process, persistence of the
RAS table across a reopen, pinned peer keys and replays after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.common.store import Store
from agents.node.rasp_core import EndpointCore
from agents.ras.domain import RegistryCore
from agents.security.crypto import Identity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources, TransferDescriptor

MAX = Resources(4000, 4096, 10_000, 100)
NEED = Resources(500, 256, 1000, 10)
TRANSFER = TransferDescriptor("nms", "reg/nms:1", "sha256:00", 5)


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.reg_id = Identity.generate("registry")
        self.ids = {n: Identity.generate(n) for n in ("edge1", "edge2")}
        self.open()
        for ident in self.ids.values():
            self.registry.register_cloud(ident.public, MAX)
            self.registry.register_server(ident.public)

    def open(self) -> None:
        self.stores = {n: Store.open(self.root / f"{n}.sqlite3")
                       for n in ("registry", "edge1", "edge2")}
        self.registry = RegistryCore(self.reg_id, self.stores["registry"])
        self.ep = {n: EndpointCore(i, registry=self.reg_id.public, store=self.stores[n],
                                   maximum=MAX) for n, i in self.ids.items()}

    def reopen(self) -> None:
        for s in self.stores.values():
            s.close()
        self.open()

    def run(self, mid: str = "m1") -> tuple[bytes, dict[int, bytes]]:
        src, dst, reg = self.ep["edge1"], self.ep["edge2"], self.registry
        src.prepare_source(mid, dst.public, NEED, TRANSFER)
        msgs: dict[int, bytes] = {}
        msgs[1], sid = dst.advertise(src.public)
        to_source = {1, 3, 7, 9, 11}
        for step in range(1, 12):
            reply: bytes | None
            if step in (2, 5):
                reply, _ = reg.deliver(msgs[step])
            else:
                party = src if step in to_source else dst
                reply, _, _ = party.deliver(msgs[step], mid if step == 1 else "")
            if step < 11:
                assert reply is not None
                msgs[step + 1] = reply
        msgs[12] = dst.report_location(sid)
        assert reg.deliver(msgs[12])[0] is None  # the service was never allocated on edge1
        return sid, msgs


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_full_run_updates_table_and_allocation(world: World) -> None:
    sid, _ = world.run()
    table = world.registry.table
    assert table.locations == {"nms": "edge2"}
    assert table.allocations == {("edge1", "edge2"): NEED}
    assert table.free_of("edge2") == Resources(3500, 3840, 9000, 90)
    assert world.ep["edge2"].free() == Resources(3500, 3840, 9000, 90)
    info = world.ep["edge2"].session_info(sid)
    assert (info.role, info.expect, info.transfer) == ("cloud", 0, TRANSFER)


def test_state_and_replay_cache_survive_a_reopen(world: World) -> None:
    _, msgs = world.run()
    world.reopen()
    assert world.registry.table.locations == {"nms": "edge2"}
    assert world.ep["edge2"].allocated == NEED
    for step, party in ((2, world.registry), (12, world.registry)):
        with pytest.raises(ProtocolError) as err:
            party.deliver(msgs[step])
        assert err.value.code is ErrorCode.REPLAY
    for step, name in ((3, "edge1"), (10, "edge2")):
        with pytest.raises(ProtocolError) as err:
            world.ep[name].deliver(msgs[step])
        assert err.value.code is ErrorCode.REPLAY


def test_advertisement_from_an_unpinned_key_is_refused(world: World) -> None:
    src, dst = world.ep["edge1"], world.ep["edge2"]
    impostor = Identity.generate("edge2")  # right name, wrong key
    src.prepare_source("m1", dst.public, NEED, TRANSFER)
    fake = EndpointCore(impostor, registry=world.reg_id.public,
                        store=Store.open(world.root / "fake.sqlite3"), maximum=MAX)
    m1, _ = fake.advertise(src.public)
    before = src.snapshot()
    with pytest.raises(ProtocolError) as err:
        src.deliver(m1, "m1")
    assert err.value.code is ErrorCode.BAD_SIGNATURE
    assert src.snapshot() == before
    with pytest.raises(ProtocolError) as err:
        src.deliver(m1, "unknown-migration")
    assert err.value.code is ErrorCode.WRONG_SESSION


def test_request_that_does_not_fit_is_refused_by_the_source(world: World) -> None:
    src, dst = world.ep["edge1"], world.ep["edge2"]
    src.prepare_source("big", dst.public, Resources(cpu=MAX.cpu + 1), TRANSFER)
    m1, _ = dst.advertise(src.public)
    with pytest.raises(ProtocolError) as err:
        src.deliver(m1, "big")
    assert err.value.code is ErrorCode.INSUFFICIENT_RESOURCES
    assert "big" in src.prepared  # nothing consumed


def test_prepare_refuses_bad_requests(world: World) -> None:
    src = world.ep["edge1"]
    with pytest.raises(ProtocolError):
        src.prepare_source("m", src.public, NEED, TRANSFER)  # to itself
    with pytest.raises(ProtocolError):
        src.prepare_source("m", world.ep["edge2"].public, Resources(), TRANSFER)
    src.prepare_source("m", world.ep["edge2"].public, NEED, TRANSFER)
    with pytest.raises(ProtocolError):
        src.prepare_source("m", world.ep["edge2"].public, NEED, TRANSFER)
