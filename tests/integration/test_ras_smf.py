"""End to end over mTLS: RAS, SMF and two edge hosts as real agents on 127.0.0.1.

Registers clouds, servers, a CMS, a user, a device and a service, requests the service through
SSP (all 11 steps), migrates it through RASP (all 12 steps) and checks the registry and the
SMF's location record after step 12.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from agents.common.status import RemoteProtocolError
from agents.ras.client import RasClient
from agents.security.rasp import TransferDescriptor
from agents.smf.client import SmfClient
from agents.smf.relay import RELEASE_STEP
from tests.adversarial.harness import SERVICE_NEEDS, Lab

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(lab_pki, tmp_path: Path) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = Lab(lab_pki, tmp_path).start()
    yield lab
    lab.close()


def test_register_request_and_migrate_end_to_end(lab: Lab) -> None:
    who = lab.scenario()
    smf = lab.smf_client()
    info = smf.service(lab.service_id)
    assert (info.name, info.version, info.location, info.epoch) == ("nms", "1", "edge1", 1)
    assert [s.name for s in info.servers] == ["edge1", "edge2"]
    assert [u.global_id for u in smf.users()] == [who.user_id]
    assert [d.global_id for d in smf.devices()] == [who.device_id]

    # SSP: request the service, open a session, two requests, end.
    with lab.app_session(who) as session:
        session.open("nms", "1")
        assert session.server_address == lab.edges["edge1"].address
        assert session.request(b"read block 7") == hashlib.sha256(b"read block 7").digest()
        assert session.request(b"write block 8") == hashlib.sha256(b"write block 8").digest()
    server_sessions = lab.edges["edge1"].ssp.server.sessions
    assert [s.phase for s in server_sessions.values()] == ["ended"]

    # RASP through Migrate Service.
    report = smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                         who.device_cap, "edge2", request_id="t-1")
    assert report.migrated, report.error_message
    assert (report.location, report.epoch) == ("edge2", 2)
    # the default (diff-first) order: RASP 1-8, then (no container phases) 9-11
    assert report.order == "diff"
    assert [p.phase for p in report.phases] == [
        "rasp_handshake", "rasp_transfer", "rasp_location_update", "location_commit"]
    assert all(p.outcome == "ok" and p.wall_seconds > 0 for p in report.phases)

    table = lab.ras_client().table()
    assert {(r.service, r.cloud) for r in table.locations} == {("nms", "edge2")}
    assert [(a.server, a.cloud) for a in table.allocations] == [("edge1", "edge2")]
    edge2_row = next(c for c in table.clouds if c.name == "edge2")
    assert edge2_row.allocated.cpu_millicores == SERVICE_NEEDS.cpu
    assert lab.edges["edge2"].rasp.allocated == SERVICE_NEEDS
    info = smf.service(lab.service_id)
    assert (info.location, info.epoch) == ("edge2", 2)
    transfer = lab.endpoint("edge2").session_info(report.rasp_session_id).transfer
    assert (transfer.service, transfer.image_ref) == ("nms", "registry.lab:5000/nms:1")

    # The next session is served by the new location.
    with lab.app_session(who) as session:
        session.open("nms", "1")
        assert session.server_address == lab.edges["edge2"].address
        assert session.request(b"x") == hashlib.sha256(b"x").digest()

    # And back again, in the paper's order: the epoch keeps moving forward.
    back = smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                       who.device_cap, "edge1", order="paper")
    assert (back.migrated, back.location, back.epoch) == (True, "edge1", 3)
    assert back.order == "paper"
    assert [p.phase for p in back.phases] == [
        "rasp_handshake", "rasp_location_update", "location_commit"]


def test_state_survives_agent_restarts(lab: Lab) -> None:
    who = lab.scenario()
    smf = lab.smf_client()
    assert smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                       who.device_cap, "edge2").migrated
    lab.restart_ras()
    lab.restart_smf()
    lab.restart_edge("edge1")
    lab.restart_edge("edge2")
    smf = lab.smf_client()
    info = smf.service(lab.service_id)
    assert (info.location, info.epoch) == ("edge2", 2)
    table = lab.ras_client().table()
    assert {(r.service, r.cloud) for r in table.locations} == {("nms", "edge2")}
    assert lab.edges["edge2"].rasp.allocated == SERVICE_NEEDS
    # capabilities issued before the restart still verify (tag key persisted, 0600)
    key = lab.root / "smf" / "keys" / "capability.key"
    assert key.stat().st_mode & 0o777 == 0o600
    report = smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                         who.device_cap, "edge1")
    assert (report.migrated, report.epoch) == (True, 3)
    with lab.app_session(who) as session:
        session.open("nms", "1")
        assert session.server_address == lab.edges["edge1"].address


def test_migration_refusals_change_nothing(lab: Lab) -> None:
    who = lab.scenario()
    other = lab.principal("Grace", "Hopper")
    smf = lab.smf_client()
    before = lab.smf_core.snapshot() if lab.smf_core else None
    with pytest.raises(RemoteProtocolError) as err:  # Grace's device, Ada's user cap
        smf.migrate(lab.service_id, who.user_id, other.device_id, who.user_cap,
                    other.device_cap, "edge2")
    assert err.value.code == "NOT_AUTHORISED"
    with pytest.raises(RemoteProtocolError) as err:  # capability of another user
        smf.migrate(lab.service_id, who.user_id, who.device_id, other.user_cap,
                    who.device_cap, "edge2")
    assert err.value.code == "NOT_AUTHORISED"
    with pytest.raises(RemoteProtocolError) as err:
        smf.migrate(lab.service_id, who.user_id, who.device_id, who.user_cap,
                    who.device_cap, "edge9")
    assert err.value.code == "UNKNOWN_PRINCIPAL"
    assert lab.smf_core is not None and lab.smf_core.snapshot() == before


def _start(module: str, config: Path) -> tuple[subprocess.Popen[str], str]:
    """Run `python -m <module> --config <config>` and wait for its "serving" log line."""
    proc = subprocess.Popen([sys.executable, "-m", module, "--config", str(config)],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if '"serving"' in line:
            return proc, json.loads(line)["address"]
    proc.kill()
    raise AssertionError(f"{module} did not start")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_ras_and_smf_run_as_agent_processes(lab_pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def config(name: str, settings: dict[str, object]) -> Path:
        cert = lab_pki.issue(f"{name}.control")  # role-shaped CN (agents.common.authz)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "name": name, "listen_host": "127.0.0.1", "listen_port": 0,
            "data_dir": str(tmp_path / name), "grace_seconds": 0.5,
            "tls": {"ca_cert": str(lab_pki.ca.cert_path), "cert": str(cert.cert_path),
                    "key": str(cert.key_path)},
            "settings": settings}))
        return path

    ras, ras_address = _start("agents.ras", config("ras", {}))
    try:
        smf, smf_address = _start("agents.smf", config("smf", {"registry": ras_address}))
        try:
            port = int(smf_address.rsplit(":", 1)[1])
            smf_public = SmfClient(lab_pki.channel(port)).identity()
            assert smf_public.name == "smf"
            assert (tmp_path / "smf" / "keys" / "smf.pub").read_bytes() == smf_public.to_bytes()
            for key in ("smf.key", "capability.key"):
                assert (tmp_path / "smf" / "keys" / key).stat().st_mode & 0o777 == 0o600
            ras_client = RasClient(lab_pki.channel(int(ras_address.rsplit(":", 1)[1])))
            assert ras_client.identity().name == "registry"
            assert list(ras_client.table().clouds) == []
        finally:
            assert _stop(smf) == 0
    finally:
        assert _stop(ras) == 0


def _free_everywhere(lab: Lab) -> dict[str, tuple[int, int]]:
    """FREE cpu / network per edge host, as its endpoint and as the RAS table say."""
    table = {c.name: c.free for c in lab.ras_client().table().clouds}
    out = {}
    for name in ("edge1", "edge2"):
        ep = lab.endpoint(name).identity()[1]
        assert (ep.cpu, ep.network) == (table[name].cpu_millicores,
                                        table[name].network_bps // 1_000_000), name
        out[name] = (ep.cpu, ep.network)
    return out


def test_back_and_forth_migrations_release_the_source(lab: Lab) -> None:
    """12 migrations edge1 <-> edge2 through the SMF, all agents restarted half way: after
    each one the host running the service has MAX - NEED free, the other MAX, at the endpoint
    and in the RAS table, and only one allocation row remains."""
    who = lab.scenario()
    full = _free_everywhere(lab)
    need = (SERVICE_NEEDS.cpu, SERVICE_NEEDS.network)
    here, there = "edge1", "edge2"
    for i in range(12):
        if i == 6:
            lab.restart_ras()
            lab.restart_smf()
            lab.restart_edge("edge1")
            lab.restart_edge("edge2")
        report = lab.smf_client().migrate(lab.service_id, who.user_id, who.device_id,
                                          who.user_cap, who.device_cap, there)
        assert report.migrated, (i, report.error_message)
        free = _free_everywhere(lab)
        assert free[there] == (full[there][0] - need[0], full[there][1] - need[1]), i
        assert free[here] == full[here], i
        table = lab.ras_client().table()
        assert [(a.server, a.cloud) for a in table.allocations] == [(here, there)], i
        assert [(s.service, s.cloud) for s in table.service_allocations] == [("nms", there)]
        here, there = there, here


def test_release_is_refused_when_replayed_or_from_another_caller(lab: Lab) -> None:
    lab.scenario()
    captured: dict[int, bytes] = {}

    def tap(step: int, role: str, message: bytes) -> bytes | None:
        captured[step] = message
        return message

    for src, dst in (("edge1", "edge2"), ("edge2", "edge1")):
        relay = lab.relay(src, dst, tap)
        hs = relay.handshake(f"r-{src}", source=lab.edges[src].rasp.public,
                             destination=lab.edges[dst].rasp.public,
                             requirement=SERVICE_NEEDS,
                             transfer=TransferDescriptor("svc-x", "reg/x:1", "", 0))
        relay.location_update(hs)
    assert hs.released and not hs.release_error and RELEASE_STEP in captured
    order = captured[RELEASE_STEP]
    before = lab.endpoint("edge2").identity()[1]
    with pytest.raises(RemoteProtocolError) as err:
        lab.endpoint("edge2").release(order)
    assert err.value.code == "REPLAY"
    with pytest.raises(grpc.RpcError) as denied:
        lab.endpoint("edge2", as_name="controller").release(order)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert lab.endpoint("edge2").identity()[1] == before
