"""The node agent over mTLS against the real Docker engine and a real TLS registry with auth.

What this proves on one machine: the stop / commit / push / pull / run / first-response phases
work through the agent's gRPC API against the local engine and a local docker-registry (TLS,
htpasswd); only missing layers move (checked at the socket level by a counting relay in front
of the registry); the pulled image is verified against the pushed digest; the workload's state
(synthetic state diff, NMS blocks) survives; phases are idempotent and fenced and survive an
agent restart; Algorithm 3 forwards a request to the nearest neighbour that fits. It does not
prove cross-host transfer (one engine is both source and destination): that runs on the lab.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import grpc
import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as pb_grpc
from agents.common.config import AgentConfig
from agents.node.agent import setup as node_setup
from agents.node.client import node_stub
from agents.workloads.nms.auth import SharedKeyAuth
from agents.workloads.nms.client import NmsClient
from edgeferry.images.nms import (
    CERT_PATH_IN_CONTAINER,
    KEY_PATH_IN_CONTAINER,
    NMS_PORT,
    NMS_UID,
    TLS_KEY_PATH_IN_CONTAINER,
    nms_image,
)
from edgeferry.images.registry import CountingRelay, LocalRegistry
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image
from tests.conftest import LabPKI
from tests.nms_tls import issue_nms_cert

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

STATE_DIFF = 256 * 1024
SLACK = 64 * 1024
PREFIX = f"efnode-it{os.getpid()}"


@pytest.fixture(scope="module")
def registry(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reg = LocalRegistry.start(tmp_path_factory.mktemp("registry"), lab_pki.ca)
    relay = CountingRelay(reg.port)
    reg.trust(relay.address)
    yield reg, relay
    relay.close()
    reg.close()


@pytest.fixture(scope="module")
def synthetic() -> str:
    return synthetic_image(SyntheticRecipe(total_bytes=5 * MB, layers=2,
                                           state_diff_bytes=STATE_DIFF)).tag


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)
    for image in client.images.list():
        for tag in image.tags:
            if f"/{PREFIX}" in tag:
                client.images.remove(tag, force=True)


def node_config(lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], tmp_path: Path,
                registry: Any, name: str = "node", **settings: Any) -> AgentConfig:
    reg, relay = registry
    pw = tmp_path / f"{name}-registry.password"
    pw.write_text(reg.password)
    pw.chmod(0o600)
    return agent_config(name=name, **lab_pki.tls_overrides(f"node.{name}"), settings={
        "registry": {"address": relay.address, "username": reg.username,
                     "password_file": str(pw), "ca_cert": str(reg.ca_cert)},
        "advertise_interval_s": 0, **settings})


def start_node(run_agent_server: Any, config: AgentConfig) -> Any:
    return run_agent_server(config, lambda s: node_setup(s, config))


def stub_for(lab_pki: LabPKI, port: int) -> pb_grpc.NodeServiceStub:
    return node_stub(lab_pki.channel(port))


def ref(mid: str, epoch: int = 1) -> pb.MigrationRef:
    return pb.MigrationRef(migration_id=mid, epoch=epoch)


def host_port(resp: pb.RunWorkloadResponse, container_port: int) -> int:
    return next(p.host_port for p in resp.ports if p.container_port == container_port)


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return bytes(resp.read())


def wait_http(port: int, path: str, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(port, path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def migrate(stub: pb_grpc.NodeServiceStub, mid: str, name: str, spec: pb.WorkloadSpec,
            relay: CountingRelay, repository: str) -> dict[str, Any]:
    """Run every phase through the agent on the one engine (source == destination here)."""
    out: dict[str, Any] = {}
    out["stop"] = stub.StopContainer(pb.StopContainerRequest(ref=ref(mid), name=name), timeout=60)
    out["commit"] = stub.CommitContainer(pb.CommitContainerRequest(
        ref=ref(mid), name=name, repository=repository), timeout=120)
    up0, _ = relay.snapshot()
    out["push"] = stub.PushImage(pb.PushImageRequest(
        ref=ref(mid), image_ref=out["commit"].image_ref), timeout=300)
    out["push_wire"] = relay.snapshot()[0] - up0
    # The destination does not have the committed image: drop it locally before pulling.
    docker.from_env().images.remove(out["commit"].image_ref)
    stub.RemoveWorkload(pb.RemoveWorkloadRequest(name=name), timeout=60)
    _, down0 = relay.snapshot()
    out["pull"] = stub.PullImage(pb.PullImageRequest(
        ref=ref(mid), image_ref=out["commit"].image_ref,
        expected_digest=out["push"].digest), timeout=300)
    out["pull_wire"] = relay.snapshot()[1] - down0
    moved = pb.WorkloadSpec()
    moved.CopyFrom(spec)
    moved.image = out["pull"].pinned_ref
    out["run"] = stub.RunWorkload(pb.RunWorkloadRequest(ref=ref(mid), spec=moved), timeout=60)
    return out


def test_synthetic_workload_migrates_with_only_missing_layers_moving(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any,
    tmp_path: Path, registry: Any, synthetic: str, engine: Any,
) -> None:
    reg, relay = registry
    # The base image is already in the registry (as after the workload's first deployment).
    base_repo = f"{relay.address}/{PREFIX}/base"
    engine.images.get(synthetic).tag(base_repo, "v1")
    for line in engine.api.push(base_repo, "v1", auth_config=reg.auth_config, stream=True,
                                decode=True):
        assert "error" not in line, line
    config = node_config(lab_pki, agent_config, tmp_path, registry)
    server = start_node(run_agent_server, config)
    stub = stub_for(lab_pki, server.port)

    report = stub.GetResources(pb.GetResourcesRequest(), timeout=30)
    assert report.max.cpu_millicores >= 1000 and report.max.memory_bytes > 0
    assert report.gpu == "no gpu" and report.gpu_source == "none"
    assert report.gpu_memory_total_bytes == 0 and report.gpu_utilisation_percent == -1
    assert report.advertise and report.docker_version

    name = f"{PREFIX}-syn"
    spec = pb.WorkloadSpec(name=name, image=synthetic,
                           ports=[pb.PortBinding(container_port=8080, host_ip="127.0.0.1")],
                           reserved=common_pb2.Resources(cpu_millicores=500))
    first = stub.RunWorkload(pb.RunWorkloadRequest(spec=spec), timeout=60)
    state_before = wait_http(host_port(first, 8080), "/state")
    after_run = stub.GetResources(pb.GetResourcesRequest(), timeout=30)
    assert after_run.allocated.cpu_millicores == 500

    out = migrate(stub, "syn-1", name, spec, relay, f"{PREFIX}/syn")
    assert out["stop"].timing.wall_seconds < 3.0  # SIGTERM handled: no 10 s grace wait
    assert out["stop"].exit_code == 0
    assert out["commit"].diff_bytes >= STATE_DIFF

    push = out["push"]
    moved = [x for x in push.layers if x.transferred]
    base_layers = len(engine.images.get(synthetic).attrs["RootFS"]["Layers"])
    assert len(push.layers) == base_layers + 1 and len(moved) == 1  # only the diff went up
    assert push.layers[-1].transferred
    assert push.timing.bytes_moved == moved[0].size >= STATE_DIFF
    assert out["push_wire"] <= 1.05 * push.timing.bytes_moved + SLACK

    pull = out["pull"]
    assert pull.verified and pull.digest == push.digest
    assert [x.transferred for x in pull.layers] == [x.transferred for x in push.layers]
    assert pull.timing.bytes_moved == moved[0].size
    assert out["pull_wire"] <= 1.05 * pull.timing.bytes_moved + SLACK

    probe = stub.ProbeFirstResponse(pb.ProbeFirstResponseRequest(
        ref=ref("syn-1"), kind=pb.PROBE_KIND_HTTP_GET, http_path="/state",
        endpoint=common_pb2.Endpoint(host="127.0.0.1", port=host_port(out["run"], 8080))),
        timeout=60)
    assert probe.body_excerpt == state_before[:256]  # the state diff moved with the container

    report = stub.GetMigration(pb.GetMigrationRequest(migration_id="syn-1"), timeout=10)
    assert [p.timing.phase for p in report.phases] == [
        "stop", "commit", "push", "pull", "run", "first_response"]
    assert all(p.timing.outcome == common_pb2.PHASE_OUTCOME_OK for p in report.phases)

    # Idempotent: the same phase again returns the stored answer and moves nothing.
    up0, _ = relay.snapshot()
    again = stub.PushImage(pb.PushImageRequest(ref=ref("syn-1"),
                                               image_ref=out["commit"].image_ref), timeout=60)
    assert again == push and relay.snapshot()[0] == up0

    # A pull that cannot be verified is refused and recorded as failed.
    with pytest.raises(grpc.RpcError) as info:
        stub.PullImage(pb.PullImageRequest(ref=ref("syn-1", 2), image_ref=out["commit"].image_ref,
                                           expected_digest="sha256:" + "0" * 64), timeout=60)
    assert info.value.code() == grpc.StatusCode.ABORTED
    # Epoch 2 was seen: epoch 1 is now fenced.
    with pytest.raises(grpc.RpcError) as info:
        stub.StopContainer(pb.StopContainerRequest(ref=ref("syn-1", 1), name=name), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # A restarted agent (same data dir) still knows the migration.
    server.stop(0)
    server2 = start_node(run_agent_server, config)
    report2 = stub_for(lab_pki, server2.port).GetMigration(
        pb.GetMigrationRequest(migration_id="syn-1"), timeout=10)
    assert report2.max_epoch == 2
    assert report2.phases[-1].timing.outcome == common_pb2.PHASE_OUTCOME_FAILED
    assert len(report2.phases) == 7


def test_nms_migration_loses_no_block_and_does_not_commit_the_key(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any,
    tmp_path: Path, registry: Any, engine: Any,
) -> None:
    _, relay = registry
    image = nms_image().tag
    server = start_node(run_agent_server, node_config(lab_pki, agent_config, tmp_path, registry))
    stub = stub_for(lab_pki, server.port)
    key = os.urandom(32)
    tls = issue_nms_cert(lab_pki.ca, tmp_path / "nms-tls")
    name = f"{PREFIX}-nms"
    spec = pb.WorkloadSpec(
        name=name, image=image,
        ports=[pb.PortBinding(container_port=NMS_PORT, host_ip="127.0.0.1")],
        secrets=[pb.SecretFile(container_path=KEY_PATH_IN_CONTAINER, content=key.hex().encode(),
                               uid=NMS_UID),
                 pb.SecretFile(container_path=CERT_PATH_IN_CONTAINER,
                               content=tls.issued.cert_path.read_bytes(), uid=NMS_UID),
                 pb.SecretFile(container_path=TLS_KEY_PATH_IN_CONTAINER,
                               content=tls.issued.key_path.read_bytes(), uid=NMS_UID)])
    run = stub.RunWorkload(pb.RunWorkloadRequest(spec=spec), timeout=60)
    location = {"port": host_port(run, NMS_PORT)}
    stub.ProbeFirstResponse(pb.ProbeFirstResponseRequest(
        kind=pb.PROBE_KIND_TCP_CONNECT, timeout_seconds=20,
        endpoint=common_pb2.Endpoint(host="127.0.0.1", port=location["port"])), timeout=30)
    client = NmsClient(lambda: ("127.0.0.1", location["port"]), SharedKeyAuth(key, "alice"),
                       tls.client(), retry_deadline=60)
    blocks = {client.allocate(): os.urandom(8192) for _ in range(32)}
    for bid, data in blocks.items():
        client.write(bid, data)

    out = migrate(stub, "nms-1", name, spec, relay, f"{PREFIX}/nms")
    assert out["stop"].timing.wall_seconds < 3.0 and out["stop"].exit_code == 0
    location["port"] = host_port(out["run"], NMS_PORT)  # what the SMF will now resolve to
    assert all(client.read(bid) == data for bid, data in blocks.items())
    moves = [o for o in client.outages if o.old_endpoint is not None]
    assert len(moves) == 1 and moves[0].new_endpoint == ("127.0.0.1", location["port"])
    client.close()

    # The session key and the TLS key were bind-mounted, never committed: the image holds empty
    # mount points.
    probe = engine.containers.create(out["pull"].pinned_ref, name=f"{PREFIX}-keycheck")
    for path in (KEY_PATH_IN_CONTAINER, TLS_KEY_PATH_IN_CONTAINER):
        chunks, stat = probe.get_archive(path)
        b"".join(chunks)
        assert stat["size"] == 0, path


def test_request_beyond_remaining_resources_is_served_by_the_neighbour(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any,
    tmp_path: Path, registry: Any, synthetic: str, engine: Any,
) -> None:
    node_b = start_node(run_agent_server,
                        node_config(lab_pki, agent_config, tmp_path, registry, "edge-b"))
    stub_b = stub_for(lab_pki, node_b.port)
    svc = f"{PREFIX}-svc"
    stub_b.RunWorkload(pb.RunWorkloadRequest(spec=pb.WorkloadSpec(
        name=svc, image=synthetic, ports=[pb.PortBinding(container_port=8080,
                                                         host_ip="127.0.0.1")])), timeout=60)
    config_a = node_config(lab_pki, agent_config, tmp_path, registry, "edge-a", neighbours=[
        {"name": "edge-b", "address": f"127.0.0.1:{node_b.port}", "distance": 1.0}])
    node_a = start_node(run_agent_server, config_a)
    stub_a = stub_for(lab_pki, node_a.port)
    cap = stub_a.GetResources(pb.GetResourcesRequest(), timeout=30).max.cpu_millicores
    # edge-a reserves all but 100 millicores for another workload.
    stub_a.RunWorkload(pb.RunWorkloadRequest(spec=pb.WorkloadSpec(
        name=f"{PREFIX}-hog", image=synthetic,
        reserved=common_pb2.Resources(cpu_millicores=cap - 100))), timeout=60)
    wait_until_serving = time.monotonic() + 10
    request = pb.SubmitRequestRequest(request_id="r1", service=svc, path="/health", hops_left=2,
                                      required=common_pb2.Resources(cpu_millicores=500))
    while True:
        try:
            answer = stub_a.SubmitRequest(request, timeout=30)
            break
        except grpc.RpcError:
            if time.monotonic() > wait_until_serving:
                raise
            time.sleep(0.1)
    assert answer.forwarded and answer.body == b"ok\n"
    assert answer.timing.phase == "request_redirect" and answer.timing.wall_seconds > 0
    assert len(answer.path) == 2
    # The same request fits at edge-b itself: served locally there.
    local = stub_b.SubmitRequest(request, timeout=30)
    assert not local.forwarded and local.timing.phase == "request_local"
    # Nobody can serve a request larger than any host.
    big = pb.SubmitRequestRequest(request_id="r2", service=svc, hops_left=2,
                                  required=common_pb2.Resources(cpu_millicores=cap * 10))
    with pytest.raises(grpc.RpcError) as info:
        stub_a.SubmitRequest(big, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
