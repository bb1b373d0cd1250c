"""agents/_proto must match what scripts/gen_proto.py generates from proto/ right now."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", REPO / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_proto", module)
    spec.loader.exec_module(module)
    return module


gen_proto = _load_gen_proto()

SAMPLE_SERVICE = """
syntax = "proto3";
package edgeferry.sample.v1;
import "edgeferry/common/v1/common.proto";
import "google/protobuf/timestamp.proto";
// PingRequest is a test message.
message PingRequest {
  // where
  edgeferry.common.v1.Endpoint target = 1;
  // when
  google.protobuf.Timestamp at = 2;
}
// PingResponse is a test message.
message PingResponse {
  // why not
  edgeferry.common.v1.Error error = 1;
}
// SampleService is a test service.
service SampleService {
  // Ping pings.
  rpc Ping(PingRequest) returns (PingResponse);
}
"""


def test_generated_code_is_fresh() -> None:
    problems = gen_proto.stale_files(gen_proto.PROTO_ROOT, gen_proto.OUT_ROOT)
    assert problems == [], (
        "agents/_proto is stale against proto/; run `python scripts/gen_proto.py`:\n"
        + "\n".join(problems)
    )


def test_every_proto_has_generated_modules() -> None:
    for rel in gen_proto.find_protos(gen_proto.PROTO_ROOT):
        stem = gen_proto.OUT_ROOT / rel.with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert Path(f"{stem}{suffix}").is_file(), f"{rel}: missing {suffix}"


def test_common_types_import_under_agents_proto() -> None:
    from agents._proto.edgeferry.common.v1 import common_pb2

    assert common_pb2.Resources.__module__ == "agents._proto.edgeferry.common.v1.common_pb2"
    assert common_pb2.ErrorCode.Value("ERROR_CODE_UNSPECIFIED") == 0
    timing = common_pb2.PhaseTiming(phase="push", wall_seconds=1.5, bytes_moved=10)
    assert common_pb2.PhaseTiming.FromString(timing.SerializeToString()) == timing


def _sample_tree(tmp_path: Path) -> Path:
    root = tmp_path / "proto"
    shutil.copytree(gen_proto.PROTO_ROOT / "edgeferry" / "common", root / "edgeferry" / "common")
    sample = root / "edgeferry" / "sample" / "v1" / "sample_service.proto"
    sample.parent.mkdir(parents=True)
    sample.write_text(SAMPLE_SERVICE)
    return root


def test_cross_proto_imports_are_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    gen_proto.generate(_sample_tree(tmp_path), out)
    v1 = out / "edgeferry" / "sample" / "v1"
    pb2 = (v1 / "sample_service_pb2.py").read_text()
    grpc_mod = (v1 / "sample_service_pb2_grpc.py").read_text()
    pyi = (v1 / "sample_service_pb2.pyi").read_text()
    grpc_pyi = (v1 / "sample_service_pb2_grpc.pyi").read_text()
    assert "from agents._proto.edgeferry.common.v1 import common_pb2" in pb2
    assert "from google.protobuf import timestamp_pb2" in pb2
    assert "from agents._proto.edgeferry.sample.v1 import sample_service_pb2" in grpc_mod
    assert "from agents._proto.edgeferry.common.v1 import common_pb2" in pyi
    assert "from agents._proto.edgeferry.sample.v1 import sample_service_pb2" in grpc_pyi
    for text in (pb2, grpc_mod, pyi, grpc_pyi):
        assert "\nfrom edgeferry." not in text and "\nimport edgeferry." not in text
    for directory in (out, out / "edgeferry", out / "edgeferry" / "sample", v1):
        assert (directory / "__init__.py").is_file()


def test_generate_is_idempotent_and_removes_orphans(tmp_path: Path) -> None:
    root = _sample_tree(tmp_path)
    out = tmp_path / "out"
    gen_proto.generate(root, out)
    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    gen_proto.generate(root, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    assert gen_proto.stale_files(root, out) == []

    (root / "edgeferry" / "sample" / "v1" / "sample_service.proto").unlink()
    assert any("not generated" in p for p in gen_proto.stale_files(root, out))
    gen_proto.generate(root, out)
    assert not (out / "edgeferry" / "sample").exists()


def test_check_detects_hand_edit(tmp_path: Path) -> None:
    root = _sample_tree(tmp_path)
    out = tmp_path / "out"
    gen_proto.generate(root, out)
    target = out / "edgeferry" / "common" / "v1" / "common_pb2.py"
    target.write_text(target.read_text() + "# edited\n")
    assert gen_proto.stale_files(root, out) == ["differs: edgeferry/common/v1/common_pb2.py"]


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    root = _sample_tree(tmp_path)
    out = tmp_path / "out"
    script = str(REPO / "scripts" / "gen_proto.py")
    cmd = [sys.executable, script, "--proto-root", str(root), "--out", str(out)]
    stale = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1 and "stale" in stale.stderr
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    fresh = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr


def test_bad_proto_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "proto" / "edgeferry" / "bad" / "v1"
    root.mkdir(parents=True)
    (root / "bad_service.proto").write_text('syntax = "proto3";\nmessage {\n')
    with pytest.raises(gen_proto.ProtoGenError):
        gen_proto.generate(tmp_path / "proto", tmp_path / "out")


def test_stubs_type_the_grpc_code(tmp_path: Path) -> None:
    """mypy-protobuf stubs give the stub, servicer and its registration function real types
    (synchronous gRPC only), so `mypy --strict` checks the agents' calls through them."""
    out = tmp_path / "out"
    gen_proto.generate(_sample_tree(tmp_path), out)
    v1 = out / "edgeferry" / "sample" / "v1"
    grpc_pyi = (v1 / "sample_service_pb2_grpc.pyi").read_text()
    assert "def __init__(self, channel: _grpc.Channel) -> None: ..." in grpc_pyi
    assert (
        "Ping: _grpc.UnaryUnaryMultiCallable[_sample_service_pb2.PingRequest, "
        "_sample_service_pb2.PingResponse]"
    ) in grpc_pyi
    assert "def add_SampleServiceServicer_to_server(" in grpc_pyi
    assert "_aio." not in grpc_pyi
    pyi = (v1 / "sample_service_pb2.pyi").read_text()
    assert "class PingRequest(_message.Message):" in pyi
