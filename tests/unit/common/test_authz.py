"""agents.common.authz: principals from certificate names, complete deny-by-default tables,
node ids bound to certificates, the CRL, and the interceptor on a real loopback server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents.common.authz import (
    ALL_ROLES,
    CONTROLLER,
    UNKNOWN,
    Policy,
    Principal,
    Revocations,
    allow,
    principal_from_cn,
)
from agents.common.config import AgentConfig
from agents.common.errors import AgentStartError
from agents.ledger.policy import owns_node_id
from tests.conftest import LabPKI
from tests.crl import write_crl
from tests.policies import ALL_POLICIES, service_descriptors


@pytest.mark.parametrize(("cn", "role", "host"), [
    ("controller", CONTROLLER, ""),
    ("smf.ctl01", "smf", "ctl01"),
    ("ledger-peer.xavier01", "ledger-peer", "xavier01"),
    ("ledger-validator.ctl01", "ledger-validator", "ctl01"),
    ("node.edge-2", "node", "edge-2"),
    ("host.controller", "host", "controller"),   # a host named controller is a host
    ("bare.edge1", "bare", "edge1"),
    ("controller.edge1", UNKNOWN, ""),             # not a role with a host
    ("edge1", UNKNOWN, ""),                        # the old bare host-name CN
    ("agent", UNKNOWN, ""),
    ("node.", UNKNOWN, ""),
    ("node.-x", UNKNOWN, ""),
    ("admin.edge1", UNKNOWN, ""),
    ("Controller", UNKNOWN, ""),
])
def test_principal_from_cn(cn: str, role: str, host: str) -> None:
    assert principal_from_cn(cn) == Principal(cn, role, host)


def test_every_rpc_of_every_service_has_exactly_one_policy_entry() -> None:
    services = service_descriptors()
    assert set(ALL_POLICIES) == set(services)
    for name, service in services.items():
        methods = {m.name for m in service.methods}
        assert set(ALL_POLICIES[name].rules) == methods, name
        for method in methods:
            rule = ALL_POLICIES[name].rule(method)
            assert rule is not None and rule.roles and rule.roles <= ALL_ROLES


def test_no_table_admits_an_unknown_or_host_certificate() -> None:
    for policy in ALL_POLICIES.values():
        for method, rule in policy.rules.items():
            assert not rule.roles & {UNKNOWN, "host", "bare"}, (policy.service, method)


def test_allow_refuses_a_misspelt_role() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        allow("smf", "ledger_peer")


@pytest.mark.parametrize(("cn", "node_id", "owned"), [
    ("ledger-peer.edge1", "edge1", True),
    ("ledger-peer.edge1", "edge1-007", True),
    ("ledger-peer.edge1", "edge1-net2-031", True),
    ("ledger-peer.edge1", "edge2-000", False),
    ("ledger-peer.edge1", "edge10-000", False),
    ("ledger-peer.edge1", "edge1-x", False),
    ("ledger-peer.edge1", "smf", False),
    ("smf.ctl01", "smf", True),
    ("smf.ctl01", "smf@edge1", False),
    ("smf.ctl01", "ctl01-000", False),
    ("controller", "smf", False),
    ("node.edge1", "edge1-000", False),
])
def test_ledger_node_ids_are_bound_to_certificates(cn: str, node_id: str, owned: bool) -> None:
    assert owns_node_id(principal_from_cn(cn), node_id) is owned


# -- CRL ---------------------------------------------------------------------------------------


def test_crl_lists_serials_and_is_reloaded_when_it_changes(lab_pki: LabPKI,
                                                          tmp_path: Path) -> None:
    a, b = lab_pki.issue("smf.crl-a"), lab_pki.issue("smf.crl-b")
    path = write_crl(lab_pki.ca, [a.certificate.serial_number], tmp_path / "ca.crl")
    crl = Revocations(path, lab_pki.ca.cert_path)
    assert crl.revoked(a.certificate.serial_number) and not crl.revoked(b.certificate.serial_number)
    write_crl(lab_pki.ca, [b.certificate.serial_number], path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert crl.revoked(b.certificate.serial_number) and not crl.revoked(a.certificate.serial_number)


def test_crl_signed_by_another_ca_is_refused_at_start(lab_pki: LabPKI, tmp_path: Path) -> None:
    path = write_crl(lab_pki.foreign_ca, [1], tmp_path / "foreign.crl")
    with pytest.raises(AgentStartError, match="not signed by the lab CA"):
        Revocations(path, lab_pki.ca.cert_path)


# -- the interceptor on a real server -------------------------------------------------------

SERVICE = "edgeferry.test.v1.AuthzService"


def _serve(run_agent_server: Any, config: AgentConfig, policy: Policy) -> Any:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"ok:" + request

    methods = {name: grpc.unary_unary_rpc_method_handler(echo)
               for name in ("Open", "SmfOnly", "OwnOnly", "Unlisted")}

    def setup(server: Any) -> None:
        server.add(lambda _s, g: g.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, methods),)), None, SERVICE,
            policy=policy)

    return run_agent_server(config, setup)


POLICY = Policy(SERVICE, {
    "Open": allow(*sorted(ALL_ROLES)),
    "SmfOnly": allow("smf"),
    "OwnOnly": allow("node", check=lambda who, req: req == who.host.encode(),
                     objects="its own host's"),
})


def _call(pki: LabPKI, port: int, cn: str, method: str, payload: bytes = b"") -> str:
    with pki.channel_as(port, cn) as channel:
        try:
            return channel.unary_unary(f"/{SERVICE}/{method}")(payload, timeout=5).decode()
        except grpc.RpcError as err:
            return f"{err.code().name}: {err.details()}"


def test_interceptor_enforces_roles_objects_and_deny_by_default(
        lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any) -> None:
    server = _serve(run_agent_server, agent_config(), POLICY)
    port = server.port
    assert _call(lab_pki, port, "smf.c", "SmfOnly") == "ok:"
    assert _call(lab_pki, port, "node.edge1", "SmfOnly") == (
        "PERMISSION_DENIED: caller 'node.edge1' (role node) may not call AuthzService/SmfOnly: "
        "its role may not call this method")
    assert _call(lab_pki, port, "node.edge1", "OwnOnly", b"edge1") == "ok:edge1"
    assert _call(lab_pki, port, "node.edge1", "OwnOnly", b"edge2").startswith(
        "PERMISSION_DENIED: caller 'node.edge1' (role node) may not call AuthzService/OwnOnly: "
        "it may touch only its own host's objects")
    assert _call(lab_pki, port, "controller", "Unlisted").startswith("PERMISSION_DENIED")
    assert _call(lab_pki, port, "stranger", "Open").startswith(
        "PERMISSION_DENIED: caller 'stranger' (role unknown)")
    assert _call(lab_pki, port, "host.controller", "SmfOnly").startswith(
        "PERMISSION_DENIED: caller 'host.controller' (role host)")


def test_revoked_certificate_is_unauthenticated_even_for_health(
        lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any,
        tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    revoked = lab_pki.issue("smf.revoked-unit")
    crl = write_crl(lab_pki.ca, [revoked.certificate.serial_number], tmp_path / "ca.crl")
    server = _serve(run_agent_server, agent_config(**{"tls.crl": str(crl)}), POLICY)
    assert _call(lab_pki, server.port, "smf.c", "SmfOnly") == "ok:"
    assert _call(lab_pki, server.port, "smf.revoked-unit", "SmfOnly") == (
        "UNAUTHENTICATED: certificate of 'smf.revoked-unit' is revoked")
    with (lab_pki.channel_as(server.port, "smf.revoked-unit") as channel,
          pytest.raises(grpc.RpcError) as err):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_service_added_without_a_policy_is_refused_whole(
        lab_pki: LabPKI, agent_config: Callable[..., AgentConfig], run_agent_server: Any) -> None:
    def setup(server: Any) -> None:
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Open": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})
        server.add(lambda _s, g: g.add_generic_rpc_handlers((handler,)), None, SERVICE)

    server = run_agent_server(agent_config(), setup)
    assert _call(lab_pki, server.port, "controller", "Open").startswith(
        "PERMISSION_DENIED: caller 'controller' (role controller) may not call AuthzService/Open")
