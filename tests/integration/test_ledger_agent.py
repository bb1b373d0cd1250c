"""The ledger agent over real gRPC + mTLS on loopback: validator, peer hosts, submitter."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from agents.common.config import AgentConfig
from agents.common.errors import AgentStartError
from agents.common.server import AgentServer
from agents.ledger.agent import bootstrap, setup_central, setup_peers, setup_validator
from agents.ledger.chain import seal_block
from agents.ledger.client import LedgerClient, ReplicaReader
from agents.ledger.consensus import Confirmation, NodeRole, sign_confirmation, sign_registration
from agents.ledger.convert import block_to_pb, confirmation_to_pb, registration_to_pb, tx_to_pb
from agents.ledger.decisions import NodeResources
from agents.ledger.metering import TrafficMeter
from agents.ledger.peer import PeerHost
from agents.ledger.signing import public_key_bytes
from agents.ledger.transactions import ContainerMetadata, sign_transaction

GB = 1_000_000_000
#: The SMF's certificate name: the ledger's metadata writer (agents/ledger/policy.py).
SMF = "smf.control"


def meta(i: int) -> ContainerMetadata:
    return ContainerMetadata("10.10.0.11", f"ctr-{i}", 2_130_000_000, 300, 1500, "image-recog")


class Lab:
    def __init__(self, lab_pki: Any, agent_config: Callable[..., AgentConfig],
                 run_agent_server: Callable[..., AgentServer]) -> None:
        self.pki, self.cfg, self.run = lab_pki, agent_config, run_agent_server
        vcfg = agent_config(name="validator", max_workers=16,
                            **{"settings.role": "validator", "settings.node_id": "validator"},
                            **lab_pki.tls_overrides("ledger-validator.control"))
        holder: dict[str, Any] = {}
        self.validator = run_agent_server(
            vcfg, lambda s: holder.update(core=setup_validator(s, vcfg)[0]))
        self.core = holder["core"]
        self.authority_key = public_key_bytes(self.core._key).hex()
        self.hosts: dict[str, tuple[AgentServer, PeerHost]] = {}

    def start_peers(self, name: str, count: int) -> tuple[AgentServer, PeerHost]:
        cfg = self.cfg(name=name, **{
            "settings.role": "peers", "settings.node_id": name, "settings.peers": count,
            "settings.validator": f"127.0.0.1:{self.validator.port}",
            "settings.authority_key": self.authority_key,
        }, **self.pki.tls_overrides(f"ledger-peer.{name}"))
        holder: dict[str, PeerHost] = {}
        server = self.run(cfg, lambda s: holder.update(host=setup_peers(s, cfg)))
        bootstrap(holder["host"], server, cfg)
        self.hosts[name] = (server, holder["host"])
        return server, holder["host"]

    def client(self, node_id: str = "smf") -> LedgerClient:
        c = LedgerClient(self.pki.channel_as(self.validator.port, SMF), node_id,
                         Ed25519PrivateKey.generate())
        c.register()
        return c


@pytest.fixture
def lab(lab_pki: Any, agent_config: Callable[..., AgentConfig],
        run_agent_server: Callable[..., AgentServer]) -> Lab:
    return Lab(lab_pki, agent_config, run_agent_server)


def _wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def test_write_propagate_confirm_and_self_evaluate(lab: Lab) -> None:
    server_a, host_a = lab.start_peers("edge1", 9)
    lab.start_peers("edge2", 1)
    client = lab.client()
    result = client.write_and_wait(meta(1), quorum=0.9, timeout=5.0)
    assert result.ok, result.reason
    assert result.total_nodes == 10 and result.confirmations >= 9 and result.required == 9
    # every identity verified and holds the block on its own replica
    _wait_until(lambda: all(i.chain.height == 1 for i in host_a.identities.values()))
    replica = ReplicaReader(lab.pki.channel_as(server_a.port, SMF), "edge1-003")
    tx = replica.metadata("ctr-1")
    assert tx is not None and tx.metadata == meta(1) and tx.submitter_id == "smf"
    ev = client.self_evaluate("ctr-1", NodeResources(4 * GB, 4000, 1000, ("image-recog",)),
                              replica)
    assert ev is not None and ev.accept and ev.source_ip == "10.10.0.11"
    ev = client.self_evaluate("ctr-1", NodeResources(GB, 1000, 1000, ("image-recog",)))
    assert ev is not None and not ev.accept
    assert client.self_evaluate("ctr-unknown", NodeResources(GB, 1, 1, ())) is None


def test_quorum_times_out_when_peers_are_down_and_restarted_peer_catches_up(lab: Lab) -> None:
    lab.start_peers("edge1", 8)
    server_b, _ = lab.start_peers("edge2", 2)
    client = lab.client()
    assert client.write_and_wait(meta(1), timeout=5.0).ok
    server_b.stop(0)
    slow = client.write_and_wait(meta(2), timeout=0.5)
    assert not slow.ok and slow.required == 9 and slow.confirmations <= 8
    assert "timed out" in slow.reason
    # every live peer confirms it (how many did within the 0.5 s depends on the machine's load:
    # the suite runs in parallel workers); the two stopped ones cannot, so it stays at 8
    assert client.confirmations(slow.tx_id, at_least=8, wait_s=10.0) == 8
    time.sleep(0.5)
    assert client.confirmations(slow.tx_id) == 8
    for i in range(3, 6):
        client.new_transaction(meta(i))
    _wait_until(lambda: lab.core.head_height() >= 3)
    # restart edge2 on a new port with the same data: it re-verifies, registers, catches up
    _, host_b = lab.start_peers("edge2", 2)
    head = lab.core.head_height()
    assert all(i.chain.height == head for i in host_b.identities.values())
    assert [b.block_hash for b in host_b.identities["edge2-001"].chain.blocks] == [
        b.block_hash for b in lab.core.chain.blocks]
    status = client.confirmations(slow.tx_id, at_least=10, wait_s=5.0)
    assert status == 10


def test_tampered_replica_is_refused_on_restart(lab: Lab, tmp_path: Path) -> None:
    server_b, _ = lab.start_peers("edge2", 1)
    client = lab.client()
    assert client.write_and_wait(meta(1), quorum=1.0, timeout=5.0).ok
    server_b.stop(0)
    db = tmp_path / "data" / "edge2" / "ledger.sqlite3"
    with sqlite3.connect(db) as raw:
        body = raw.execute("SELECT body FROM blocks WHERE height = 1").fetchone()[0]
        raw.execute("UPDATE blocks SET body = ? WHERE height = 1",
                    (body.replace('"cpu_usage":1500', '"cpu_usage":1'),))
    with pytest.raises(AgentStartError, match="block 1: Merkle root"):
        lab.start_peers("edge2", 1)


def test_non_authority_block_is_refused_by_peers(lab: Lab) -> None:
    server_a, host_a = lab.start_peers("edge1", 2)
    client = lab.client()
    assert client.write_and_wait(meta(1), quorum=1.0, timeout=5.0).ok
    head = lab.core.chain.head
    mallory = Ed25519PrivateKey.generate()
    # the validator's own certificate: only it may deliver blocks at all
    stub = pb_grpc.LedgerPeerServiceStub(
        lab.pki.channel_as(server_a.port, "ledger-validator.control"))
    for validator_id in ("mallory", "validator"):
        forged = seal_block(height=head.height + 1, prev_hash=head.block_hash,
                            transactions=[client.sign(meta(9))], validator_id=validator_id,
                            key=mallory, now_ms=int(time.time() * 1000))
        with pytest.raises(grpc.RpcError) as err:
            stub.DeliverBlocks(pb.DeliverBlocksRequest(peer_id="edge1-000",
                                                       blocks=[block_to_pb(forged)]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "authority" in err.value.details() or "signature" in err.value.details()
    assert host_a.identities["edge1-000"].chain.height == head.height


def test_replays_and_strangers_are_refused(lab: Lab) -> None:
    _, host = lab.start_peers("edge1", 1)
    client = lab.client()
    stub = client.stub
    tx = client.sign(meta(1))
    stub.SubmitTransaction(pb.SubmitTransactionRequest(transaction=tx_to_pb(tx)))
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitTransaction(pb.SubmitTransactionRequest(transaction=tx_to_pb(tx)))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    _wait_until(lambda: lab.core.confirmations(tx.tx_id).confirmations == 1)
    # a confirmation captured on the wire and sent again is a replay
    ident = host.identities["edge1-000"]
    conf = sign_confirmation("edge1-000", ident.key, ident.chain, seq=1)
    as_peer = pb_grpc.LedgerServiceStub(lab.pki.channel_as(lab.validator.port, "ledger-peer.edge1"))
    resp = as_peer.SubmitConfirmations(
        pb.SubmitConfirmationsRequest(confirmations=[confirmation_to_pb(conf)]))
    assert resp.accepted == 0 and resp.errors[0].code == common_pb2.ERROR_CODE_REPLAY
    # an unregistered submitter cannot write
    stranger = LedgerClient(lab.pki.channel_as(lab.validator.port, SMF), "nobody",
                            Ed25519PrivateKey.generate())
    status = stranger.new_transaction(meta(2))
    assert not status.ok and "PERMISSION_DENIED" in status.error
    # somebody else cannot take over a registered id with another key
    with pytest.raises(grpc.RpcError) as err:
        LedgerClient(lab.pki.channel_as(lab.validator.port, SMF), "smf",
                     Ed25519PrivateKey.generate()).register()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # a client certificate from another CA does not even get a connection
    foreign = grpc.secure_channel(
        f"127.0.0.1:{lab.validator.port}",
        grpc.ssl_channel_credentials(lab.pki.ca.cert_path.read_bytes(),
                                     lab.pki.foreign_client.key_path.read_bytes(),
                                     lab.pki.foreign_client.cert_path.read_bytes()))
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.LedgerServiceStub(foreign).GetStatus(pb.GetStatusRequest(), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


class _Expected:
    """What a TrafficMeter should hold: per RPC, request + response protobuf bytes and calls."""

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def call(self, stub: Any, name: str, request: Any) -> Any:
        resp = getattr(stub, name)(request, timeout=5)
        self.bytes[name] = self.bytes.get(name, 0) + request.ByteSize() + resp.ByteSize()
        self.calls[name] = self.calls.get(name, 0) + 1
        return resp


def test_traffic_meters_count_payload_bytes_of_every_answered_ledger_rpc(
        lab_pki: Any, agent_config: Callable[..., AgentConfig],
        run_agent_server: Callable[..., AgentServer]) -> None:
    vmeter, pmeter, cmeter = TrafficMeter(), TrafficMeter(), TrafficMeter()
    vcfg = agent_config(name="validator",
                        **{"settings.role": "validator", "settings.node_id": "validator"},
                        **lab_pki.tls_overrides("ledger-validator.control"))
    holder: dict[str, Any] = {}
    validator = run_agent_server(
        vcfg, lambda s: holder.update(core=setup_validator(s, vcfg, vmeter)[0]))
    core = holder["core"]
    stub = pb_grpc.LedgerServiceStub(lab_pki.channel_as(validator.port, SMF))
    want = _Expected()
    key = Ed25519PrivateKey.generate()
    reg = sign_registration("smf", key, NodeRole.SUBMITTER, "", 1)
    want.call(stub, "RegisterNode", pb.RegisterNodeRequest(registrations=[registration_to_pb(reg)]))
    tx = sign_transaction(meta(1), "smf", key, time.time_ns() // 1_000_000)
    want.call(stub, "SubmitTransaction", pb.SubmitTransactionRequest(transaction=tx_to_pb(tx)))
    _wait_until(lambda: core.latest_metadata("ctr-1") is not None)
    want.call(stub, "GetConfirmations", pb.GetConfirmationsRequest(tx_id=tx.tx_id))
    want.call(stub, "GetBlocks", pb.GetBlocksRequest(from_height=0))
    want.call(stub, "GetMetadata", pb.GetMetadataRequest(container_id="ctr-1"))
    ghost = Confirmation("edge1-999", b"c" * 32, 0, b"h" * 32, 1, b"s" * 64)  # never registered
    peer_stub = pb_grpc.LedgerServiceStub(lab_pki.channel_as(validator.port, "ledger-peer.edge1"))
    resp = want.call(peer_stub, "SubmitConfirmations", pb.SubmitConfirmationsRequest(
        confirmations=[confirmation_to_pb(ghost)]))
    assert resp.accepted == 0 and len(resp.errors) == 1
    # not metered: the status read, and every refused call
    stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    for name, request in (("SubmitTransaction",
                           pb.SubmitTransactionRequest(transaction=tx_to_pb(tx))),
                          ("GetMetadata", pb.GetMetadataRequest(container_id="ctr-none"))):
        with pytest.raises(grpc.RpcError):
            getattr(stub, name)(request, timeout=5)
    assert (vmeter.bytes, vmeter.calls) == (want.bytes, want.calls)
    assert vmeter.total() == sum(want.bytes.values())

    # a peer host: its DeliverBlocks are counted on both ends (the validator's pushes)
    pcfg = agent_config(name="edge1", **{
        "settings.role": "peers", "settings.node_id": "edge1", "settings.peers": 2,
        "settings.validator": f"127.0.0.1:{validator.port}",
        "settings.authority_key": public_key_bytes(core._key).hex()},
        **lab_pki.tls_overrides("ledger-peer.edge1"))
    pholder: dict[str, PeerHost] = {}
    peers = run_agent_server(pcfg, lambda s: pholder.update(host=setup_peers(s, pcfg, pmeter)))
    bootstrap(pholder["host"], peers, pcfg)
    client = LedgerClient(lab_pki.channel_as(validator.port, SMF), "smf", key)
    assert client.write_and_wait(meta(2), quorum=1.0, timeout=5.0).ok
    _wait_until(lambda: vmeter.bytes.get("DeliverBlocks", 0) > 0
                and vmeter.bytes.get("DeliverBlocks") == pmeter.bytes.get("DeliverBlocks")
                and vmeter.calls.get("DeliverBlocks") == pmeter.calls.get("DeliverBlocks"))
    pstub = pb_grpc.LedgerPeerServiceStub(lab_pki.channel_as(peers.port, SMF))
    pwant = _Expected()
    pwant.call(pstub, "GetMetadata", pb.GetMetadataRequest(container_id="ctr-2",
                                                           peer_id="edge1-001"))
    pstub.GetStatus(pb.GetStatusRequest(peer_id="edge1-001"), timeout=5)
    with pytest.raises(grpc.RpcError):
        pstub.GetMetadata(pb.GetMetadataRequest(container_id="ctr-none", peer_id="edge1-001"),
                          timeout=5)
    assert pmeter.bytes["GetMetadata"] == pwant.bytes["GetMetadata"]
    assert set(pmeter.bytes) == {"DeliverBlocks", "GetMetadata"}

    # the central baseline
    ccfg = agent_config(name="central", **{"settings.role": "central"})
    central = run_agent_server(ccfg, lambda s: setup_central(s, ccfg, cmeter))
    cstub = pb_grpc.CentralMetadataServiceStub(lab_pki.channel_as(central.port, SMF))
    cwant = _Expected()
    tx3 = sign_transaction(meta(3), "smf", key, time.time_ns() // 1_000_000)
    cwant.call(cstub, "PutMetadata", pb.PutMetadataRequest(transaction=tx_to_pb(tx3)))
    cwant.call(cstub, "GetMetadata", pb.GetMetadataRequest(container_id="ctr-3"))
    with pytest.raises(grpc.RpcError):
        cstub.GetMetadata(pb.GetMetadataRequest(container_id="ctr-none"), timeout=5)
    assert (cmeter.bytes, cmeter.calls) == (cwant.bytes, cwant.calls)
