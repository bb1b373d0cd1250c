"""SMF without gRPC: the migration plan, the fencing epoch, the commands and SSP stage 1-4
through SmfCore with an in-process chosen server as its server port."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from agents.common.store import Store
from agents.node.ssp_server import SspServerCore, digest_handler
from agents.security.crypto import Identity
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.rasp import Resources
from agents.security.ssp import ServerInfo, SspApplication, SspCms
from agents.security.stores import InMemoryReplayCache
from agents.smf.core import SmfCore
from agents.smf.domain import (
    AlreadyExists,
    InvalidRequest,
    MigrationFailed,
    MigrationPlan,
    MigrationState,
    Phase,
    PhaseOutcome,
    PhaseResult,
    PolicyDenied,
    ServerEntry,
    StaleEpoch,
)

APP = Identity.generate("app")  # the application the capabilities are bound to


def test_plan_runs_in_order_and_stops_at_the_first_failure() -> None:
    ran: list[str] = []

    def ok(name: str) -> Phase:
        def run(state: MigrationState) -> PhaseResult:
            ran.append(name)
            return PhaseResult(bytes_moved=7)

        return Phase(name, run)

    def deny(state: MigrationState) -> None:
        raise PolicyDenied("no")

    plan = MigrationPlan([ok("a"), ok("c")]).insert_before("c", ok("b"))
    plan.insert_after("c", Phase("d", deny)).add(ok("e"))
    assert plan.names == ["a", "b", "c", "d", "e"]
    with pytest.raises(MigrationFailed) as failed:
        plan.run(None)  # type: ignore[arg-type]
    assert ran == ["a", "b", "c"]
    outcomes = [(r.phase, r.outcome) for r in failed.value.records]
    assert outcomes == [("a", PhaseOutcome.OK), ("b", PhaseOutcome.OK), ("c", PhaseOutcome.OK),
                        ("d", PhaseOutcome.REJECTED), ("e", PhaseOutcome.SKIPPED)]
    assert failed.value.records[0].bytes_moved == 7
    assert failed.value.phase == "d"
    with pytest.raises(KeyError):
        plan.insert_before("zzz", ok("x"))


class World:
    def __init__(self, root: Path) -> None:
        self.smf_id = Identity.generate("smf")
        self.core = SmfCore(self.smf_id, Store.open(root / "smf.sqlite3"),
                            secrets.token_bytes(32))
        self.server_id = Identity.generate("edge1")
        self.server = SspServerCore(self.server_id, smf=self.smf_id.public,
                                    store=Store.open(root / "edge1.sqlite3"),
                                    secret=secrets.token_bytes(32), ip="10.0.0.1", port=7000)
        self.cms = Identity.generate("cms")
        self.core.register_cms(self.cms.public)

    def register(self, version: str = "1") -> str:
        role = SspCms(self.cms, smf=self.smf_id.public, replay=InMemoryReplayCache())
        m1 = role.register_service("nms", version,
                                   (ServerInfo(self.server_id.public, "10.0.0.1", 7000),))
        reply, service = self.core.register_service(m1.to_bytes(), port=9000,
                                                    requirement=Resources(cpu=100))
        role.handle(reply)
        self.server.provision(service.global_id, service.capability.to_bytes())
        return service.global_id

    def port(self, server: ServerEntry, message: bytes) -> bytes:
        reply, _ = self.server.deliver(message)
        assert reply is not None
        return reply


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_commands_and_ssp_through_the_core(world: World) -> None:
    sid = world.register()
    assert world.core.location(sid).epoch == 1
    with pytest.raises(AlreadyExists):
        world.register()
    user = world.core.register_user("Ada", "Lovelace", holder=APP.public, role="driver", rank=3)
    dev = world.core.register_device("phone", "Ada", "Lovelace", holder=APP.public)
    app = SspApplication(APP, smf=world.smf_id.public,
                         user_cap=user.capability, dev_cap=dev.capability,
                         replay=InMemoryReplayCache())
    m6, server, timings = world.core.request_service(
        app.request_service("nms", "1", "10.0.0.2").to_bytes(), world.port)
    assert server.name == "edge1" and set(timings) == {"smf_step3", "server_steps4_5",
                                                        "smf_step5"}
    m7 = app.handle(m6)
    assert m7 is not None
    reply, _ = world.server.deliver(m7.to_bytes())
    assert reply is not None
    app.handle(reply)
    m10, _ = world.server.deliver(app.request(b"hello").to_bytes())
    assert m10 is not None
    app.handle(m10)
    assert app.state.last_result == digest_handler(b"hello")
    with pytest.raises(InvalidRequest):
        world.core.register_user("", "x", holder=APP.public)
    with pytest.raises(InvalidRequest):
        world.core.register_user("a", "b", holder=APP.public, rank=5000)


def test_location_moves_forward_only(world: World) -> None:
    sid = world.register()
    loc = world.core.commit_location(sid, 1, "edge2")
    assert (loc.server, loc.epoch) == ("edge2", 2)
    with pytest.raises(StaleEpoch):
        world.core.commit_location(sid, 1, "edge3")
    assert world.core.location(sid) == loc


def test_authorisation_checks_both_capabilities(world: World) -> None:
    sid = world.register()
    other = Identity.generate("edge2")
    world.core.add_server(sid, ServerEntry("edge2", "srv2", other.public, "10.0.0.3", 7000, 5))
    ada = world.core.register_user("Ada", "Lovelace", holder=APP.public)
    ada_dev = world.core.register_device("phone", "Ada", "Lovelace", holder=APP.public)
    bob = world.core.register_user("Bob", "Smith", holder=APP.public)
    ok = world.core.authorise_migration(sid, ada.global_id, ada_dev.global_id,
                                        ada.capability.to_bytes(), ada_dev.capability.to_bytes(),
                                        "edge2")
    assert ok[3].name == "edge1" and ok[4].name == "edge2"
    cases = [
        (bob.global_id, ada.capability, "NOT_AUTHORISED"),  # not Bob's USER CAP
        (ada.global_id, bob.capability, "NOT_AUTHORISED"),  # another user's cap
    ]
    for user_id, cap, code in cases:
        with pytest.raises(ProtocolError) as err:
            world.core.authorise_migration(sid, user_id, ada_dev.global_id, cap.to_bytes(),
                                           ada_dev.capability.to_bytes(), "edge2")
        assert err.value.code == code
    with pytest.raises(ProtocolError) as err:
        world.core.authorise_migration(sid, ada.global_id, ada_dev.global_id, b"",
                                       ada_dev.capability.to_bytes(), "edge2")
    assert err.value.code is ErrorCode.MALFORMED
    with pytest.raises(AlreadyExists):
        world.core.authorise_migration(sid, ada.global_id, ada_dev.global_id,
                                       ada.capability.to_bytes(),
                                       ada_dev.capability.to_bytes(), "edge1")
    renewed = world.core.reissue_user_capability(ada.global_id)
    with pytest.raises(ProtocolError) as err:
        world.core.authorise_migration(sid, ada.global_id, ada_dev.global_id,
                                       ada.capability.to_bytes(),
                                       ada_dev.capability.to_bytes(), "edge2")
    assert err.value.code is ErrorCode.REVOKED
    world.core.authorise_migration(sid, ada.global_id, ada_dev.global_id,
                                   renewed.capability.to_bytes(),
                                   ada_dev.capability.to_bytes(), "edge2")


def test_one_migration_per_service_at_a_time(world: World) -> None:
    sid = world.register()
    slot = world.core.migration_slot(sid)
    slot.__enter__()
    with pytest.raises(Exception, match="being migrated"), world.core.migration_slot(sid):
        pass
    slot.__exit__(None, None, None)
    with world.core.migration_slot(sid):  # free again
        pass
