"""Algorithm 2 at the SMF: MigrateService without a destination picks, among the service's
servers that advertised (signed, fresh), one whose FREE fits the service's requirement."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from agents.common.store import Store
from agents.security.advertisement import Advertisement, Amounts, sign_advertisement
from agents.security.crypto import Identity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.ssp import ServerInfo, SspCms
from agents.security.stores import InMemoryReplayCache
from agents.smf.core import SmfCore
from agents.smf.domain import ServerEntry

MIB = 1024 * 1024
APP = Identity.generate("app")
SOURCE = Identity.generate("edge0")
JETSON = Identity.generate("jetson1")
X86 = Identity.generate("x86-1")


class World:
    def __init__(self, root: Path) -> None:
        smf = Identity.generate("smf")
        self.core = SmfCore(smf, Store.open(root / "smf.sqlite3"), secrets.token_bytes(32))
        cms = Identity.generate("cms")
        self.core.register_cms(cms.public)
        role = SspCms(cms, smf=smf.public, replay=InMemoryReplayCache())
        m1 = role.register_service("nms", "1", (ServerInfo(SOURCE.public, "10.0.0.1", 7000),))
        # a 2 GB service (RASP units: millicores, MiB)
        _, service = self.core.register_service(m1.to_bytes(), port=9000,
                                                requirement=Resources(cpu=250, memory=2048))
        self.sid = service.global_id
        for i, ident in enumerate((JETSON, X86), start=2):
            self.core.add_server(self.sid, ServerEntry(ident.name, f"s{i}", ident.public,
                                                       f"10.0.0.{i}", 7000, i))
        self.user = self.core.register_user("Ada", "Lovelace", holder=APP.public)
        self.dev = self.core.register_device("phone", "Ada", "Lovelace", holder=APP.public)
        self.seq = 0

    def advertise(self, ident: Identity, free_mib: int, cpu: int, *, key: Identity | None = None
                  ) -> None:
        self.seq += 1
        free = Amounts(cpu, free_mib * MIB, 50_000 * MIB, 40_000_000, 0)
        advert = Advertisement(ident.name, self.seq, int(time.time() * 1000), free, free)
        self.core.adverts.accept(*sign_advertisement(key or ident, advert))

    def authorise(self) -> str:
        out = self.core.authorise_migration(
            self.sid, self.user.global_id, self.dev.global_id, self.user.capability.to_bytes(),
            self.dev.capability.to_bytes(), "")
        return out[4].name


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_jetson_class_host_refused_x86_accepted(world: World) -> None:
    world.advertise(JETSON, 1536, 500)  # docker --cpus 0.5 --memory 1.5g
    with pytest.raises(ProtocolError) as err:
        world.authorise()
    assert err.value.code is ErrorCode.INSUFFICIENT_RESOURCES
    assert f"jetson1: memory_bytes {2048 * MIB} > {1536 * MIB}" in err.value.message
    world.advertise(X86, 3072, 1000)  # --cpus 1 --memory 3g
    assert world.authorise() == "x86-1"
    placed = world.core.placements[world.sid]
    assert placed.chosen == "x86-1" and [c for c, _ in placed.ignored] == ["jetson1"]


def test_no_advertisement_no_placement_and_forgeries_do_not_count(world: World) -> None:
    with pytest.raises(ProtocolError) as err:
        world.authorise()
    assert err.value.code is ErrorCode.INSUFFICIENT_RESOURCES
    with pytest.raises(ProtocolError) as forged:
        world.advertise(X86, 3072, 1000, key=Identity.generate("x86-1"))
    assert forged.value.code is ErrorCode.BAD_SIGNATURE
    with pytest.raises(ProtocolError) as stranger:
        world.advertise(Identity.generate("edge9"), 3072, 1000)
    assert stranger.value.code is ErrorCode.UNKNOWN_PRINCIPAL
    with pytest.raises(ProtocolError):
        world.authorise()


def test_the_source_is_never_chosen(world: World) -> None:
    world.advertise(SOURCE, 8192, 4000)
    with pytest.raises(ProtocolError) as err:
        world.authorise()
    assert err.value.code is ErrorCode.INSUFFICIENT_RESOURCES


def test_placement_detail_is_structured_json(world: World) -> None:
    import json

    from agents.smf.servicer import SmfServicer

    world.advertise(JETSON, 1536, 500)
    world.advertise(X86, 3072, 1000)
    world.authorise()
    doc = json.loads(world.core.placements[world.sid].detail())
    assert doc["chosen"] == "x86-1"
    assert doc["refused"] == [{"cloud": "jetson1",
                               "shortfall": {"memory_bytes": [2048 * MIB, 1536 * MIB]}}]
    listed = SmfServicer(world.core, None, None).ListAdvertisements(  # type: ignore[arg-type]
        None, None)  # type: ignore[arg-type]
    assert [(a.cloud, a.free.memory_bytes) for a in listed.advertisements] == [
        ("jetson1", 1536 * MIB), ("x86-1", 3072 * MIB)]
    assert listed.ttl_s == world.core.adverts.ttl_s


def test_placement_detail_stays_bounded() -> None:
    import json

    from agents.security.advertisement import Placement

    many = Placement("a", tuple((f"cloud{i:03d}", f"memory_bytes {i + 10} > {i}")
                                for i in range(200)))
    text = many.detail(limit=600)
    doc = json.loads(text)
    assert len(text) <= 600 and doc["chosen"] == "a"
    assert doc["more"] == 200 - len(doc["refused"]) > 0
    assert doc["refused"][0] == {"cloud": "cloud000", "shortfall": {"memory_bytes": [10, 0]}}
