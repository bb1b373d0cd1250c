"""Abuse bounds (issue 12, item 4): a busy agent still answers health, an oversized request is
refused before decoding, and every session/member table is bounded, expiring and written one row
at a time. Timing goals live in benchmarks/bench_abuse.py; these tests assert behaviour."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agents.common.config import AgentConfig
from agents.common.server import AgentServer
from agents.common.store import SessionBound, Store
from agents.ledger.consensus import NodeRole, sign_registration
from agents.ledger.errors import MembershipFull
from agents.ledger.store import LedgerStore
from agents.ledger.validator import ValidatorCore
from agents.node.rasp_core import EndpointCore
from agents.ras.domain import RegistryCore
from agents.security import encoding
from agents.security.crypto import Identity
from agents.security.envelope import MAX_ENVELOPE_BYTES, parse_envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.ssp import SspApplication
from agents.security.stores import InMemoryReplayCache
from tests.unit.ras.test_domain import MAX, NEED, TRANSFER
from tests.unit.smf.test_plan_and_core import World as SmfWorld

pytestmark = pytest.mark.timeout(120)

SERVICE = "edgeferry.test.v1.AbuseService"


class Clock:
    """A settable clock (seconds) shared by a core and its tables."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


def _server(methods: dict[str, Callable[[Any, grpc.ServicerContext], bytes]],
            decoded: list[int] | None = None, **limits: Any) -> AgentServer:
    def decode(raw: bytes) -> bytes:
        if decoded is not None:
            decoded.append(len(raw))
        return raw

    config = AgentConfig(name="abuse", listen_port=0, insecure_plaintext=True, max_workers=4,
                         limits={"max_queued_rpcs": 4, **limits})
    server = AgentServer(config)
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=decode)
        for name, fn in methods.items()})
    server.add(lambda _s, g: g.add_generic_rpc_handlers((handler,)), None, SERVICE)
    server.start()
    return server


def test_finding_blocking_calls_do_not_freeze_health() -> None:
    """Eight (here: 40) blocking calls used to take every worker, so an unrelated health check
    waited for them. Now calls beyond the cap and the queue are refused at once, and health is
    answered while every worker is held."""
    release = threading.Event()
    server = _server({"Block": lambda _r, _c: release.wait(30) and b"done",
                      "Ping": lambda _r, _c: b"pong"})
    channel = grpc.insecure_channel(server.address)
    try:
        block = channel.unary_unary(f"/{SERVICE}/Block")
        held = [block.future(b"", timeout=30) for _ in range(40)]
        deadline = time.monotonic() + 10
        refused = []
        while time.monotonic() < deadline:
            refused = [f for f in held if f.done()]
            if len(refused) == 40 - 8 and server.admission.admitted == 8:
                break
            time.sleep(0.05)
        # 4 running + 4 queued are held; the other 32 were refused, not left hanging
        assert server.admission.admitted == 8
        assert len(refused) == 32
        assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(20):  # answered while every worker and queue slot is taken
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as busy:  # an ordinary call is refused, not queued
            channel.unary_unary(f"/{SERVICE}/Ping")(b"", timeout=5)
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert sorted(f.result() for f in held if f not in refused) == [b"done"] * 8
        assert channel.unary_unary(f"/{SERVICE}/Ping")(b"", timeout=5) == b"pong"
    finally:
        release.set()
        channel.close()
        server.stop(0)


def test_finding_calls_without_a_deadline_get_the_server_deadline() -> None:
    """A client that sets no deadline cannot hold a worker forever: the server's bound ends
    the call, and the worker slot is given back."""
    release = threading.Event()
    server = _server({"Block": lambda _r, c: release.wait(10) and b"late"},
                     call_deadline_s=0.5)
    channel = grpc.insecure_channel(server.address)
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ended:
            channel.unary_unary(f"/{SERVICE}/Block")(b"")  # no client deadline
        assert ended.value.code() == grpc.StatusCode.CANCELLED
        assert time.monotonic() - t0 < 5
    finally:
        release.set()
        channel.close()
        server.stop(0)


def test_finding_oversized_envelope_refused_cheaply() -> None:
    """A 4 MiB envelope was decoded (1.7 s of CPU) before being refused. Now: an RPC request
    above its method's limit never reaches the deserializer (RESOURCE_EXHAUSTED), and an
    envelope above the protocol bound is refused on its length, before decoding."""
    decoded: list[int] = []
    server = _server({"Echo": lambda r, _c: b"ok"}, decoded=decoded,
                     max_request_bytes=64 * 1024)
    channel = grpc.insecure_channel(server.address,
                                    options=[("grpc.max_send_message_length", 32 << 20)])
    try:
        echo = channel.unary_unary(f"/{SERVICE}/Echo")
        for size in (64 * 1024 + 1, 4 << 20, 16 << 20):
            with pytest.raises(grpc.RpcError) as refused:
                echo(b"\x06" + b"\0" * (size - 1), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "exceeds" in (refused.value.details() or "")
        assert decoded == []  # none of them was handed to the decoder
        assert echo(b"\0" * (64 * 1024), timeout=10) == b"ok"
        assert decoded == [64 * 1024]
    finally:
        channel.close()
        server.stop(0)
    # the envelope bound: a decodable 4 MiB list (what cost 1.7 s) is refused by length
    blob = encoding.encode([0] * (MAX_ENVELOPE_BYTES // 4))
    assert len(blob) > MAX_ENVELOPE_BYTES
    with pytest.raises(ProtocolError) as err:
        parse_envelope(blob)
    assert err.value.code is ErrorCode.LIMIT_REACHED


class RaspWorld:
    """A registry with a small session table and two edges running RASP through it."""

    def __init__(self, root: Path, capacity: int, ttl_s: float) -> None:
        self.clock = Clock()
        self.reg_id = Identity.generate("registry")
        self.ids = {n: Identity.generate(n) for n in ("edge1", "edge2")}
        self.store = Store.open(root / "registry.sqlite3")
        self.registry = RegistryCore(self.reg_id, self.store, clock=self.clock,
                                     session_capacity=capacity, session_ttl_s=ttl_s)
        self.ep = {n: EndpointCore(i, registry=self.reg_id.public,
                                   store=Store.open(root / f"{n}.sqlite3"), maximum=MAX)
                   for n, i in self.ids.items()}
        for ident in self.ids.values():
            self.registry.register_cloud(ident.public, MAX)
            self.registry.register_server(ident.public)

    def start(self, mid: str) -> tuple[bytes, bytes]:
        """Steps 1 and 2 of a new migration; return (session id, step-2 bytes)."""
        src, dst = self.ep["edge1"], self.ep["edge2"]
        src.prepare_source(mid, dst.public, NEED, TRANSFER)
        m1, sid = dst.advertise(src.public)
        m2, _, _ = src.deliver(m1, mid)
        assert m2 is not None
        return sid, m2

    def session_rows(self) -> int:
        row = self.store.query_one("SELECT COUNT(*) AS n FROM sessions")
        return int(row["n"]) if row else 0


def test_finding_ras_sessions_bounded_and_incremental(tmp_path: Path) -> None:
    """The RAS kept every session and rewrote all of them per message. Now each message
    writes one session row whatever the number stored, the table refuses a session beyond its
    capacity (LIMIT_REACHED, nothing changed), and expired sessions free their slots."""
    world = RaspWorld(tmp_path, capacity=3, ttl_s=60)
    table = world.registry._ras.sessions
    changes = []
    for i in range(3):
        _, m2 = world.start(f"m{i}")
        before_rows, before_changes = table.rows_written, world.store._db.total_changes
        world.registry.deliver(m2)
        assert table.rows_written - before_rows == 1
        changes.append(world.store._db.total_changes - before_changes)
    assert changes[0] == changes[1] == changes[2]  # constant, not growing with the sessions
    assert world.session_rows() == 3
    before = world.registry.snapshot()
    _, m2 = world.start("m3")
    with pytest.raises(ProtocolError) as full:
        world.registry.deliver(m2)
    assert full.value.code is ErrorCode.LIMIT_REACHED
    assert world.registry.snapshot() == before
    world.clock.shift = 61  # the three sessions are past their lifetime
    sid, m2 = world.start("m4")
    reply, _ = world.registry.deliver(m2)
    assert reply is not None
    assert world.session_rows() == 1 and set(world.registry.registry.sessions) == {sid}


def test_finding_smf_ssp_sessions_and_ledger_members_bounded(tmp_path: Path) -> None:
    """SMF and SSP-server sessions and the validator's members grew without limit. Now each
    has a capacity with a clear refusal; SSP sessions expire and free their slots."""
    world = SmfWorld(tmp_path)
    clock = Clock()
    world.core.session_bound = SessionBound(capacity=3, ttl_s=600, clock=clock)
    world.server.session_bound = SessionBound(capacity=2, ttl_s=600, clock=clock)
    world.register()  # the CMS registration holds one SMF session
    app_key = Identity.generate("app")  # the capabilities are bound to the app's key
    user = world.core.register_user("Ada", "Lovelace", holder=app_key.public)
    dev = world.core.register_device("phone", "Ada", "Lovelace", holder=app_key.public)

    def request() -> None:
        app = SspApplication(app_key, smf=world.smf_id.public,
                             user_cap=user.capability, dev_cap=dev.capability,
                             replay=InMemoryReplayCache())
        world.core.request_service(app.request_service("nms", "1", "10.0.0.2").to_bytes(),
                                   world.port)

    request()
    request()  # SMF: 1 CMS + 2 app sessions = 3; server: 2
    with pytest.raises(ProtocolError) as smf_full:
        request()
    assert smf_full.value.code is ErrorCode.LIMIT_REACHED
    assert len(world.core.ssp.sessions) == 2
    world.core.session_bound = SessionBound(capacity=10, ttl_s=600, clock=clock)
    with pytest.raises(ProtocolError) as server_full:  # the SSP server's own bound
        request()
    assert server_full.value.code is ErrorCode.LIMIT_REACHED
    assert len(world.server.server.sessions) == 2
    clock.shift = 601  # every session is past its lifetime: the slots are free again
    request()
    assert len(world.server.server.sessions) == 1

    store = LedgerStore(tmp_path / "ledger.sqlite3", durable=False)
    core = ValidatorCore(store, "validator", Ed25519PrivateKey.generate(), max_members=3)
    keys = [Ed25519PrivateKey.generate() for _ in range(4)]
    for i, key in enumerate(keys[:3]):
        core.register(sign_registration(f"peer-{i}", key, NodeRole.PEER, "", 1), "ledger")
    with pytest.raises(MembershipFull):
        core.register(sign_registration("peer-3", keys[3], NodeRole.PEER, "", 1), "ledger")
    assert [m.node_id for m in store.members()] == ["peer-0", "peer-1", "peer-2"]
    # a known member may still re-register (update) when the registry is full
    core.register(sign_registration("peer-0", keys[0], NodeRole.PEER, "", 2), "ledger")
    store.close()
