"""A real AgentServer on 127.0.0.1: mTLS rules, health/reflection, graceful stop, persistence."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agents.common.authz import ALL_ROLES, Policy, allow
from agents.common.client import (
    peer_identity,
    plaintext_loopback_channel,
    require_peer,
    secure_channel,
)
from agents.common.config import AgentConfig
from agents.common.errors import AgentStartError
from agents.common.server import AgentServer
from agents.common.store import ReplayCache, Store
from tests.conftest import LabPKI
from tests.signal_elsewhere import run_signalled_from_another_thread

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
TEST_SERVICE = "edgeferry.test.v1.TestService"


def check(channel: grpc.Channel, service: str = "", timeout: float = 5.0) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status)


def assert_refused(channel: grpc.Channel) -> None:
    with channel, pytest.raises(grpc.RpcError) as info:
        check(channel, timeout=3.0)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def add_test_service(
    server: AgentServer, methods: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]
) -> None:
    """Register raw-bytes unary methods under TEST_SERVICE (no generated code needed)."""
    handler = grpc.method_handlers_generic_handler(
        TEST_SERVICE,
        {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()},
    )
    server.add(
        lambda _servicer, grpc_server: grpc_server.add_generic_rpc_handlers((handler,)),
        None,
        TEST_SERVICE,
        policy=any_role(TEST_SERVICE, methods),
    )


def any_role(service: str, methods: Iterable[str]) -> Policy:
    """A policy admitting every agent role and the controller to `methods`."""
    return Policy(service, {name: allow(*sorted(ALL_ROLES)) for name in methods})


def call(channel: grpc.Channel, method: str, payload: bytes, timeout: float = 5.0) -> bytes:
    rpc = channel.unary_unary(f"/{TEST_SERVICE}/{method}")
    result: bytes = rpc(payload, timeout=timeout)
    return result


# -- transport security -----------------------------------------------------------------------


def test_mtls_client_is_accepted_and_services_are_serving(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(
        agent_config(), lambda s: add_test_service(s, {"Echo": lambda req, ctx: req})
    )
    with lab_pki.channel(server.port) as channel:
        assert check(channel) == SERVING
        assert check(channel, TEST_SERVICE) == SERVING
        assert call(channel, "Echo", b"hi") == b"hi"


def test_ipv6_loopback_agent_is_reachable(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config(listen_host="::1"))
    assert server.address == f"[::1]:{server.port}"
    with lab_pki.channel(server.port, host="::1") as channel:
        assert check(channel) == SERVING


def test_reflection_lists_registered_services(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(
        agent_config(), lambda s: add_test_service(s, {"Echo": lambda req, ctx: req})
    )
    with lab_pki.channel(server.port) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in response.list_services_response.service}
    assert {TEST_SERVICE, "grpc.health.v1.Health"} <= names


def test_plaintext_client_is_refused(
    agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config())
    assert_refused(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def test_client_without_certificate_is_refused(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config())
    creds = grpc.ssl_channel_credentials(root_certificates=lab_pki.ca.cert_path.read_bytes())
    assert_refused(grpc.secure_channel(f"127.0.0.1:{server.port}", creds))


def test_client_certificate_from_foreign_ca_is_refused(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config())
    assert_refused(lab_pki.channel(server.port, lab_pki.foreign_client))


def test_client_refuses_server_from_foreign_ca(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    impostor = lab_pki.foreign_server
    server = run_agent_server(
        agent_config(
            **{"tls.cert": str(impostor.cert_path), "tls.key": str(impostor.key_path)},
        )
    )
    assert_refused(lab_pki.channel(server.port))


def test_client_certificate_without_client_auth_eku_is_refused(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config())
    server_only = lab_pki.issue("server-only", server=True, client=False)
    assert_refused(lab_pki.channel(server.port, server_only))


def test_server_certificate_without_server_auth_eku_is_refused(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    # right CA and right SANs, but only the clientAuth purpose
    client_only = lab_pki.ca.issue(
        "client-only",
        lab_pki.root / "issued",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        server=False,
    )
    server = run_agent_server(
        agent_config(
            **{"tls.cert": str(client_only.cert_path), "tls.key": str(client_only.key_path)}
        )
    )
    assert_refused(lab_pki.channel(server.port))


def test_server_name_must_match_certificate_sans(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config())
    client = lab_pki.client
    target = f"127.0.0.1:{server.port}"
    ok = secure_channel(
        target, lab_pki.ca.cert_path, client.cert_path, client.key_path, server_name="localhost"
    )
    with ok:
        assert check(ok) == SERVING
    wrong = secure_channel(
        target, lab_pki.ca.cert_path, client.cert_path, client.key_path, server_name="ras.lab"
    )
    assert_refused(wrong)


def test_plaintext_mode_works_on_loopback_only_when_enabled(
    agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(agent_config(tls=None, insecure_plaintext=True))
    with plaintext_loopback_channel(f"127.0.0.1:{server.port}") as channel:
        assert check(channel) == SERVING

    off = AgentServer(agent_config(tls=None))
    with pytest.raises(AgentStartError, match="no TLS material"):
        off.start()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_bind_without_tls_is_refused_at_start(
    agent_config: Callable[..., AgentConfig], host: str
) -> None:
    server = AgentServer(agent_config(tls=None, listen_host=host))
    with pytest.raises(AgentStartError, match="no TLS material"):
        server.start()
    # even a config that skipped validation cannot open a plaintext port off loopback
    unchecked = agent_config(tls=None).model_copy(
        update={"listen_host": host, "insecure_plaintext": True}
    )
    with pytest.raises(AgentStartError, match="refusing to serve plaintext"):
        AgentServer(unchecked).start()


def test_port_in_use_is_a_start_error(
    agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    first = run_agent_server(agent_config())
    second = AgentServer(agent_config(listen_port=first.port))
    with pytest.raises(AgentStartError, match="cannot listen"):
        second.start()


def test_world_readable_key_is_refused(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    key = tmp_path / "loose.key"
    key.write_bytes(lab_pki.server.key_path.read_bytes())
    key.chmod(0o644)
    server = AgentServer(agent_config(**{"tls.key": str(key)}))
    with pytest.raises(AgentStartError, match="chmod 600"):
        server.start()


# -- caller identity --------------------------------------------------------------------------


def test_peer_identity_and_authorisation_by_certificate(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    def whoami(_req: bytes, ctx: grpc.ServicerContext) -> bytes:
        return peer_identity(ctx).encode()

    def admin_only(_req: bytes, ctx: grpc.ServicerContext) -> bytes:
        return require_peer(ctx, {"controller"}).encode()

    server = run_agent_server(
        agent_config(), lambda s: add_test_service(s, {"WhoAmI": whoami, "Admin": admin_only})
    )
    intruder = lab_pki.issue("smf.intruder", server=False)  # a lab role, not the controller
    with lab_pki.channel(server.port) as channel:
        assert call(channel, "WhoAmI", b"") == b"controller"
        assert call(channel, "Admin", b"") == b"controller"
    with lab_pki.channel(server.port, intruder) as channel:
        assert call(channel, "WhoAmI", b"") == b"smf.intruder"
        with pytest.raises(grpc.RpcError) as info:
            call(channel, "Admin", b"")
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_require_peer_rejects_plaintext_caller(
    agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    server = run_agent_server(
        agent_config(tls=None, insecure_plaintext=True),
        lambda s: add_test_service(
            s, {"Admin": lambda _r, ctx: require_peer(ctx, {"controller"}).encode()}
        ),
    )
    with plaintext_loopback_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            call(channel, "Admin", b"")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- lifecycle --------------------------------------------------------------------------------


def test_graceful_stop_lets_inflight_rpc_finish_and_refuses_new_ones(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig]
) -> None:
    entered = threading.Event()

    def slow(req: bytes, _ctx: grpc.ServicerContext) -> bytes:
        entered.set()
        time.sleep(0.5)
        return b"done:" + req

    server = AgentServer(agent_config())
    add_test_service(server, {"Slow": slow})
    closed: list[str] = []
    server.on_stop(lambda: closed.append("store"))
    server.start()
    results: dict[str, Any] = {}
    with lab_pki.channel(server.port) as channel:

        def worker() -> None:
            try:
                results["value"] = call(channel, "Slow", b"x")
            except grpc.RpcError as err:
                results["error"] = err.code()

        thread = threading.Thread(target=worker)
        thread.start()
        assert entered.wait(5)
        server.stop(grace=5)
        thread.join(5)
        assert results == {"value": b"done:x"}
        assert server.wait(0)
        assert closed == ["store"]
        with pytest.raises(grpc.RpcError):
            check(channel, timeout=2)


def test_store_and_replay_cache_survive_a_restart(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    config = agent_config(name="nonces")

    def setup(server: AgentServer) -> None:
        store = Store.open(config.resolved_data_dir / "agent.sqlite3")
        server.on_stop(store.close)
        cache = ReplayCache(store, "test", default_ttl=600)
        add_test_service(
            server,
            {"Use": lambda nonce, _ctx: b"fresh" if cache.check_and_insert(nonce) else b"replay"},
        )

    first = run_agent_server(config, setup)
    with lab_pki.channel(first.port) as channel:
        assert call(channel, "Use", b"nonce-1") == b"fresh"
        assert call(channel, "Use", b"nonce-1") == b"replay"
    first.stop(1)

    second = run_agent_server(config, setup)
    with lab_pki.channel(second.port) as channel:
        assert call(channel, "Use", b"nonce-1") == b"replay"
        assert call(channel, "Use", b"nonce-2") == b"fresh"
    db = config.resolved_data_dir / "agent.sqlite3"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_key_files_are_private(lab_pki: LabPKI) -> None:
    for key in (
        lab_pki.ca.key_path,
        lab_pki.server.key_path,
        lab_pki.client.key_path,
        lab_pki.foreign_ca.key_path,
    ):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(lab_pki.ca.cert_path.stat().st_mode) == 0o644


def test_agent_process_stops_gracefully_on_sigterm(lab_pki: LabPKI, tmp_path: Path) -> None:
    config_file = tmp_path / "bare.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "listen_host": "127.0.0.1",
                "listen_port": 0,
                "data_dir": str(tmp_path / "data"),
                "tls": {
                    "ca_cert": str(lab_pki.ca.cert_path),
                    "cert": str(lab_pki.server.cert_path),
                    "key": str(lab_pki.server.key_path),
                },
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents.common", "--config", str(config_file), "--grace", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        started = json.loads(proc.stderr.readline())
        assert started["event"] == "agent_started" and started["agent"] == "bare"
        port = int(started["address"].rsplit(":", 1)[1])
        with lab_pki.channel(port) as channel:
            assert check(channel) == SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines() if line]
        assert events[-2:] == ["agent_stopping", "agent_stopped"]
        assert "signal_received" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_agent_stops_when_sigterm_reaches_a_thread_other_than_main(
    lab_pki: LabPKI, tmp_path: Path
) -> None:
    config_file = tmp_path / "bare.yaml"
    config_file.write_text(yaml.safe_dump({
        "listen_host": "127.0.0.1", "listen_port": 0, "data_dir": str(tmp_path / "data"),
        "tls": {"ca_cert": str(lab_pki.ca.cert_path), "cert": str(lab_pki.server.cert_path),
                "key": str(lab_pki.server.key_path)}}))
    code, stderr = run_signalled_from_another_thread(
        "from agents.common.runner import run_agent\n"
        "sys.exit(run_agent('bare', None, ['--config', sys.argv[1], '--grace', '1']))",
        [str(config_file)], "the agent")
    assert code == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line]
    assert events[-3:] == ["signal_received", "agent_stopping", "agent_stopped"]


def test_agent_process_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("listen_port: 50051\nlisten_prot: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "agents.common", "--config", str(config_file)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"bare: error: unknown key 'listen_prot' in {config_file}")


# -- per-service interceptors -----------------------------------------------------------------


class _Recorder(grpc.ServerInterceptor):
    """Records the method of every call it sees and tags each answer with its name."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.seen.append(f"{self.name} {details.method}")
        handler = continuation(details)
        if handler is None:
            return None
        inner = handler.unary_unary
        return grpc.unary_unary_rpc_method_handler(
            lambda req, ctx: inner(req, ctx) + self.name.encode())


def test_add_interceptors_run_around_that_service_only_registered_methods_included(
    lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any
) -> None:
    seen: list[str] = []
    other = "edgeferry.test.v1.OtherService"

    def setup(server: AgentServer) -> None:
        methods = {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}

        def add_like_generated_code(_servicer: Any, grpc_server: grpc.Server) -> None:
            grpc_server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(TEST_SERVICE, methods),))
            grpc_server.add_registered_method_handlers(TEST_SERVICE, methods)

        server.add(add_like_generated_code, None, TEST_SERVICE,
                   policy=any_role(TEST_SERVICE, methods),
                   interceptors=(_Recorder("a", seen), _Recorder("b", seen)))
        server.add(lambda _s, g: g.add_registered_method_handlers(other, methods), None, other,
                   policy=any_role(other, methods))

    server = run_agent_server(agent_config(), setup)
    with lab_pki.channel(server.port) as channel:
        assert check(channel) == SERVING
        # the first interceptor is outermost: b tags the answer first, then a
        assert call(channel, "Echo", b"hi") == b"hiba"
        assert channel.unary_unary(f"/{other}/Echo")(b"hi", timeout=5) == b"hi"
    assert seen == [f"a /{TEST_SERVICE}/Echo", f"b /{TEST_SERVICE}/Echo"]
