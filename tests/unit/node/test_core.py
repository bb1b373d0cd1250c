"""NodeCore with a fake engine: idempotent fenced phases, restart, request migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents._proto.edgeferry.common.v1 import common_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import Fenced, Layer, NoCapacity, PhaseFailed, Resources
from agents.node.engine import RegistryAccess, Timed
from agents.node.gpu import NO_GPU
from agents.node.store import NodeStore

REG = RegistryAccess("127.0.0.1:5000", "u", "p", Path("/nonexistent/ca.crt"))
CAP = Resources(cpu_millicores=2000, memory_bytes=1000, storage_bytes=1000, network_bps=1)


class FakeEngine:
    registry = REG
    interface = "lo"
    platform = "linux/amd64"  # the platform workloads run as (DockerEngine.platform)

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_push = False

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": "/nonexistent"}

    def version(self) -> str:
        return "20.10"

    def stop(self, name: str, timeout: int) -> Timed:
        self.calls.append(f"stop {name} {timeout}")
        return Timed(0.25, {"exit_code": 0})

    def push(self, ref: Any) -> Timed:
        self.calls.append(f"push {ref}")
        if self.fail_push:
            raise PhaseFailed("registry down")
        return Timed(1.5, {"digest": "sha256:" + "1" * 64, "interface": "lo",
                           "interface_tx_bytes": 999,
                           "layers": [Layer("sha256:" + "a" * 64, 100, False),
                                      Layer("sha256:" + "b" * 64, 7, True)]})

    def find(self, name: str) -> Any:
        return None

    #: RootFS layers of the image the committed container runs from
    image_layers = 5

    def commit(self, name: str, target: Any, labels: dict[str, str], *, max_layers: int,
               scratch_dir: Path | None = None) -> Timed:
        self.calls.append(f"commit {name} {target} max={max_layers}")
        out: dict[str, Any] = {"diff_bytes": 12, "image_id": "sha256:" + "c" * 64,
                               "flattened": False, "layers": self.image_layers + 1}
        if self.image_layers + 1 >= max_layers:  # independent of flatten.must_flatten
            out |= {"flattened": True, "layers": 1, "would_be_layers": self.image_layers + 1,
                    "flat_bytes": 4096}
        return Timed(0.1, out)


def make_core(tmp_path: Path, engine: FakeEngine | None = None, **kw: Any) -> NodeCore:
    core = NodeCore(engine or FakeEngine(), NodeStore.open(tmp_path / "node.sqlite3"),  # type: ignore[arg-type]
                    NodeOptions(tmp_path), gpu=NO_GPU, **kw)
    core._capacity = CAP
    return core


def ref(epoch: int, mid: str = "m1") -> pb.MigrationRef:
    return pb.MigrationRef(migration_id=mid, epoch=epoch)


def test_push_reports_bytes_of_uploaded_layers_only(tmp_path: Path) -> None:
    core = make_core(tmp_path)
    out = core.push(pb.PushImageRequest(ref=ref(1), image_ref="127.0.0.1:5000/m/x:t"))
    assert out.timing.bytes_moved == 7
    assert out.compressed_total == 107
    assert out.timing.outcome == common_pb2.PHASE_OUTCOME_OK
    assert [x.transferred for x in out.layers] == [False, True]


def test_commit_targets_the_hosts_own_registry_namespace(tmp_path: Path) -> None:
    """Per-host registry accounts (issue 12): edge1's account may push only under edge1/, so
    the migrated image is committed there, whatever repository the SMF names."""
    engine = FakeEngine()
    engine.registry = RegistryAccess("10.0.0.1:5000", "edge1", "p", Path("/x"), "edge1")
    core = make_core(tmp_path, engine)
    out = core.commit(pb.CommitContainerRequest(ref=ref(1), name="nms",
                                                repository="nms-migrated"))
    assert out.image_ref == "10.0.0.1:5000/edge1/nms-migrated:m1-1"
    again = core.commit(pb.CommitContainerRequest(ref=ref(1, "m2"), name="nms",
                                                  repository="edge1/nms-migrated"))
    assert again.image_ref == "10.0.0.1:5000/edge1/nms-migrated:m2-1"
    plain = make_core(tmp_path / "plain")  # no namespace configured: the repository as named
    assert plain.commit(pb.CommitContainerRequest(ref=ref(1), name="nms", repository="a/b")
                        ).image_ref == "127.0.0.1:5000/a/b:m1-1"


def test_commit_passes_the_configured_threshold_and_reports_a_flattened_image(
        tmp_path: Path) -> None:
    engine = FakeEngine()
    core = make_core(tmp_path, engine)
    plain = core.commit(pb.CommitContainerRequest(ref=ref(1), name="w", repository="r"))
    assert engine.calls[-1].endswith("max=64")
    assert "flattened" not in plain.timing.detail
    assert "image 6 layers" in plain.timing.detail
    low = make_core(tmp_path / "low", engine)
    low.options.max_image_layers = 6
    flat = low.commit(pb.CommitContainerRequest(ref=ref(1), name="w", repository="r"))
    assert engine.calls[-1].endswith("max=6")
    assert flat.timing.detail.startswith("flattened: the commit would have made 6 layers")
    assert "4096 bytes" in flat.timing.detail


def test_repeated_phase_returns_stored_answer_without_redoing_it(tmp_path: Path) -> None:
    engine = FakeEngine()
    core = make_core(tmp_path, engine)
    req = pb.StopContainerRequest(ref=ref(1), name="efnode-w")
    first = core.stop(req)
    second = core.stop(req)
    assert first == second
    assert engine.calls == ["stop efnode-w 10"]


def test_stale_epoch_is_fenced_and_newer_epoch_reruns(tmp_path: Path) -> None:
    engine = FakeEngine()
    core = make_core(tmp_path, engine)
    core.stop(pb.StopContainerRequest(ref=ref(2), name="efnode-w"))
    with pytest.raises(Fenced):
        core.stop(pb.StopContainerRequest(ref=ref(1), name="efnode-w"))
    core.stop(pb.StopContainerRequest(ref=ref(3), name="efnode-w", timeout_seconds=2))
    assert engine.calls == ["stop efnode-w 10", "stop efnode-w 2"]


def test_failed_phase_is_recorded_and_can_be_retried(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.fail_push = True
    core = make_core(tmp_path, engine)
    req = pb.PushImageRequest(ref=ref(1), image_ref="127.0.0.1:5000/m/x:t")
    with pytest.raises(PhaseFailed):
        core.push(req)
    (record,) = core.migration("m1").phases
    assert record.timing.outcome == common_pb2.PHASE_OUTCOME_FAILED
    assert "registry down" in record.timing.detail
    engine.fail_push = False
    assert core.push(req).timing.bytes_moved == 7
    assert core.migration("m1").phases[0].timing.outcome == common_pb2.PHASE_OUTCOME_OK


def test_restarted_agent_reports_and_replays_finished_phases(tmp_path: Path) -> None:
    engine = FakeEngine()
    core = make_core(tmp_path, engine)
    req = pb.PushImageRequest(ref=ref(4), image_ref="127.0.0.1:5000/m/x:t")
    before = core.push(req)
    core.store.close()
    engine2 = FakeEngine()
    again = make_core(tmp_path, engine2)
    report = again.migration("m1")
    assert report.max_epoch == 4
    assert [p.timing.phase for p in report.phases] == ["push"]
    assert again.push(req) == before
    assert engine2.calls == []
    with pytest.raises(Fenced):
        again.push(pb.PushImageRequest(ref=ref(3), image_ref="127.0.0.1:5000/m/x:t"))


class FakeNeighbour:
    def __init__(self, name: str, distance: float, free: Resources) -> None:
        self.name, self.distance, self._free = name, distance, free
        self.received: list[pb.SubmitRequestRequest] = []

    def free(self) -> Resources:
        return self._free

    def submit(self, request: pb.SubmitRequestRequest) -> pb.SubmitRequestResponse:
        self.received.append(request)
        return pb.SubmitRequestResponse(served_by=self.name, body=b"from " + self.name.encode(),
                                        path=[self.name])


def test_request_beyond_remaining_resources_goes_to_nearest_fitting_neighbour(
    tmp_path: Path,
) -> None:
    near_full = FakeNeighbour("near", 1.0, Resources(cpu_millicores=100))
    mid = FakeNeighbour("mid", 2.0, Resources(cpu_millicores=4000))
    far = FakeNeighbour("far", 9.0, Resources(cpu_millicores=4000))
    core = make_core(tmp_path, neighbours=[far, near_full, mid])
    req = pb.SubmitRequestRequest(request_id="r1", service="efnode-svc", hops_left=2,
                                  required=common_pb2.Resources(cpu_millicores=2000))
    out = core.submit_request(req)  # REQ 2000 >= R_rem 2000
    assert out.forwarded and out.served_by == "mid" and out.body == b"from mid"
    assert out.timing.phase == "request_redirect" and out.timing.wall_seconds > 0
    assert mid.received[0].hops_left == 1
    assert not near_full.received and not far.received


def test_request_that_fits_is_served_locally_with_a_reservation(tmp_path: Path) -> None:
    seen: list[Resources] = []
    core = make_core(tmp_path, neighbours=[])

    class Container:
        def __init__(self) -> None:
            self.attrs = {"NetworkSettings": {"Ports": {"8080/tcp": [{"HostPort": "4321"}]}}}

    core.engine.find = lambda name: Container()  # type: ignore[method-assign]

    def handler(port: int, path: str) -> bytes:
        seen.append(core.allocated())
        return f"{port}{path}".encode()

    core.local_handler = handler
    req = pb.SubmitRequestRequest(request_id="r2", service="efnode-svc", path="/health",
                                  required=common_pb2.Resources(cpu_millicores=1500))
    out = core.submit_request(req)
    assert not out.forwarded and out.body == b"4321/health"
    assert seen == [Resources(cpu_millicores=1500)]  # reserved while serving
    assert core.allocated() == Resources()  # released afterwards


def test_request_nobody_can_serve_is_refused(tmp_path: Path) -> None:
    core = make_core(tmp_path, neighbours=[FakeNeighbour("n", 1, Resources(cpu_millicores=10))])
    req = pb.SubmitRequestRequest(request_id="r3", service="efnode-svc", hops_left=1,
                                  required=common_pb2.Resources(cpu_millicores=5000))
    with pytest.raises(NoCapacity):
        core.submit_request(req)
    req.hops_left = 0
    with pytest.raises(NoCapacity):
        core.submit_request(req)


def test_a_prepull_that_moved_layers_writes_them_out_before_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pulled layers' writeback must not wait for the downtime: the agent syncs once the
    pull brought bytes, and only then (a cached image costs nothing)."""
    pulled: list[Layer] = []
    events: list[str] = []

    class PullingEngine(FakeEngine):
        def prepull(self, image: Any) -> Timed:
            events.append("pull")
            return Timed(0.5, {"layers": list(pulled)})

    monkeypatch.setattr("agents.node.core.os.sync", lambda: events.append("sync"))
    core = make_core(tmp_path, PullingEngine())
    pulled[:] = [Layer("sha256:" + "a" * 64, 100, True), Layer("sha256:" + "b" * 64, 7, False)]
    out = core.prepull(pb.PrePullImageRequest(image_ref="127.0.0.1:5000/m/x:t"))
    assert events == ["pull", "sync"]
    assert out.timing.bytes_moved == 100 and "written out to disk" in out.timing.detail
    pulled[:] = [Layer("sha256:" + "a" * 64, 100, False)]
    events.clear()
    out = core.prepull(pb.PrePullImageRequest(image_ref="127.0.0.1:5000/m/x:t"))
    assert events == ["pull"] and out.timing.detail == ""
