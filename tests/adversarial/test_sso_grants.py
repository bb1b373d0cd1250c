"""Attacks on the SSO agents (issue 14): callers of the wrong role, execution grants that are
replayed, bound to another node / service / input, expired, forged or signed by a
non-composer, oversized messages, and a neighbour serving corrupt blocks.

Every refusal is checked against a positive control: the same call with the honest value
goes through, so a test cannot pass because the call fails for another reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as bpb
from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2_grpc as bpb_grpc
from agents.blockcache.convert import signed_grant_to_pb
from agents.common.status import error_code_of
from agents.security.grant import SignedGrant, input_digest, issue_grant
from tests.adversarial.sso_lab import SsoLab

DATA = b"the media file's bytes " * 50


@pytest.fixture(scope="module")
def lab(lab_pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoLab]:
    lab = SsoLab(lab_pki, tmp_path_factory.mktemp("sso-adv")).start()
    yield lab
    lab.close()


def grant_as(lab: SsoLab, cn: str, *, node: str = "edge1", service: str = "filter",
             data: bytes = DATA, ttl_s: float = 30.0, now_ns: int | None = None,
             pki: Any = None) -> SignedGrant:
    issued = pki if pki is not None else lab.pki.issue(cn)
    key = load_pem_private_key(issued.key_path.read_bytes(), password=None)
    return issue_grant(key, issued.cert_path.read_bytes(), node=node, service=service,
                       data_digest=input_digest(data), request_id="adv", transition="t1",
                       ttl_s=ttl_s, now_ns=now_ns)[1]


def execute(lab: SsoLab, grant: SignedGrant | None, *, data: bytes = DATA,
            service: str = "filter", edge: str = "edge1",
            cn: str = "composer.control") -> tuple[grpc.StatusCode, str | None, str]:
    stub = bpb_grpc.BlockCacheServiceStub(lab.channel(lab.edges[edge].address, cn))
    request = bpb.ExecuteRequest(service=service, input=data)
    if grant is not None:
        request.grant.CopyFrom(signed_grant_to_pb(grant))
    try:
        stub.Execute(request, timeout=10)
    except grpc.RpcError as err:
        return err.code(), error_code_of(err), err.details() or ""
    return grpc.StatusCode.OK, None, ""


def test_honest_grant_runs_once_and_its_replay_is_refused(lab: SsoLab) -> None:
    grant = grant_as(lab, "composer.control")
    assert execute(lab, grant)[0] == grpc.StatusCode.OK
    code, proto, details = execute(lab, grant)
    assert (code, proto) == (grpc.StatusCode.ALREADY_EXISTS, "REPLAY"), details
    assert execute(lab, grant_as(lab, "composer.control"))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize(("label", "kwargs", "use", "want"), [
    ("another node", {"node": "edge2"}, {}, "WRONG_RECIPIENT"),
    ("another service", {"service": "transcode"}, {}, "NOT_AUTHORISED"),
    ("another input", {"data": b"other bytes"}, {}, "NOT_AUTHORISED"),
    ("expired", {"ttl_s": 1.0, "now_ns": time.time_ns() - 120 * 10**9}, {}, "EXPIRED"),
    ("too long", {"ttl_s": 3600.0}, {}, "MALFORMED"),
])
def test_misbound_grants_are_refused(lab: SsoLab, label: str, kwargs: dict[str, Any],
                                     use: dict[str, Any], want: str) -> None:
    code, proto, details = execute(lab, grant_as(lab, "composer.control", **kwargs), **use)
    assert proto == want, (label, code, details)
    assert code != grpc.StatusCode.OK


def test_grant_signed_by_a_non_composer_or_forged_is_refused(lab: SsoLab, lab_pki: Any) -> None:
    # an edge's own (lab-CA) certificate is not a composer
    assert execute(lab, grant_as(lab, "blockcache.edge2"))[1] == "NOT_AUTHORISED"
    # a composer certificate from a foreign CA
    foreign = lab_pki.foreign_ca.issue("composer.evil", lab.root / "foreign",
                                       dns_names=("localhost",))
    assert execute(lab, grant_as(lab, "", pki=foreign))[1] == "UNKNOWN_PRINCIPAL"
    # a valid grant whose payload is altered after signing (another service, same signature)
    honest = grant_as(lab, "composer.control", service="filter")
    other = grant_as(lab, "composer.control", service="transcode")
    forged = SignedGrant(other.payload, honest.signature, honest.certificate)
    assert execute(lab, forged, service="transcode", edge="edge2")[1] == "BAD_SIGNATURE"
    # no grant at all on an edge that requires one
    code, _, details = execute(lab, None)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "grant" in details
    assert execute(lab, honest)[0] == grpc.StatusCode.OK  # positive control


@pytest.mark.parametrize(("caller", "rpc"), [
    ("blockcache.edge2", "Execute"),      # a peer edge may not make edge1 execute
    ("blockcache.edge2", "Configure"),
    ("blockcache.edge2", "Fetch"),        # peers query GetBlock only (no counted requests)
    ("composer.control", "Configure"),
    ("composer.control", "PutFile"),
    ("node.edge1", "GetBlock"),
    ("host.edge1", "GetStats"),
])
def test_wrong_roles_are_refused(lab: SsoLab, caller: str, rpc: str) -> None:
    stub = bpb_grpc.BlockCacheServiceStub(lab.channel(lab.edges["edge1"].address, caller))
    request = getattr(bpb, f"{rpc}Request")()
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, rpc)(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not call" in (err.value.details() or "")


def test_composer_refuses_every_agent_role(lab: SsoLab) -> None:
    for cn in ("composer.control", "blockcache.edge1", "blockcache-origin.control"):
        with pytest.raises(grpc.RpcError) as err:
            lab.composer_client(cn).compose("{seq: [filter]}")
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(lab.composer_client().compose("{seq: [filter]}").tasks) == 1


def test_oversize_messages_are_refused(lab: SsoLab) -> None:
    big = b"x" * (9 * 1024 * 1024)
    code, _, _ = execute(lab, grant_as(lab, "composer.control", data=big), data=big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as err:
        lab.edge_client("edge1").fetch("file-000001", list(range(300)) * 1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        lab.composer_client().compose("{seq: [" + ", ".join(["filter"] * 20000) + "]}")
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.RESOURCE_EXHAUSTED)
    with pytest.raises(grpc.RpcError) as err:
        lab.edge_client("edge1").fetch("../../etc/passwd", [0])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # positive control: a request within the bounds
    assert len(lab.edge_client("edge1").fetch("file-000001", [0, 1]).blocks) == 2


def test_corrupt_blocks_everywhere_are_never_served(lab: SsoLab) -> None:
    """When every source lies (both neighbours and the origin), the request fails with
    DATA_LOSS and nothing is cached; once the origin is honest again it is served."""
    cores = [lab.edge_core("edge2"), lab.edge_core("edge3"), lab.origin_core()]
    honest = [c.peek for c in cores]
    lab.edge_client("edge2").fetch("file-000005", [2])

    def liar(real: Any) -> Any:
        def peek(file_id: str, index: int, digest: str) -> bytes | None:
            data = real(file_id, index, digest)
            return None if data is None else data + b"!"
        return peek

    for core, real in zip(cores, honest, strict=True):
        core.peek = liar(real)
    try:
        with pytest.raises(grpc.RpcError) as err:
            lab.edge_client("edge1").fetch("file-000005", [2], return_data=True)
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert "corrupt" in (err.value.details() or "")
    finally:
        for core, real in zip(cores, honest, strict=True):
            core.peek = real
    reply = lab.edge_client("edge1").fetch("file-000005", [2], return_data=True)
    assert reply.blocks[0].source != bpb.BLOCK_SOURCE_LOCAL  # nothing corrupt was cached
    import hashlib
    assert hashlib.sha256(reply.blocks[0].data).hexdigest() == reply.blocks[0].digest


def test_chi_refuses_a_node_without_access(lab: SsoLab) -> None:
    """A composer whose chi gives edge2 (the only transcoder) the service but not the file:
    the secure strategy refuses with the reason; once chi lists the file it runs."""
    from agents.composer.agent import setup_composer
    from agents.composer.client import ComposerClient

    def composer_with(chi: dict[str, list[str]], name: str) -> ComposerClient:
        assert lab.origin is not None
        cfg = lab.config(name, "composer.control", {
            "origin": lab.origin.address,
            "edges": [{"name": n, "address": r.address} for n, r in lab.edges.items()],
            "offers": [{"node": "edge2", "service": "transcode"},
                       {"node": "edge1", "service": "filter"}],
            "chi": chi})
        running = lab._serve(cfg, setup_composer)
        lab.extra.append(running)
        return ComposerClient(lab.channel(running.address))

    strict = composer_with({"edge2": ["transcode"]}, "composer-strict")
    with pytest.raises(grpc.RpcError) as err:
        strict.run("{seq: [transcode]}", "cooperative-secure", "edge1", "file-000001")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "chi" in (err.value.details() or "")
    allowed = composer_with({"edge2": ["transcode", "file-000001"]}, "composer-allowed")
    reply = allowed.run("{seq: [transcode]}", "cooperative-secure", "edge1", "file-000001")
    assert [t.node for t in reply.tasks] == ["edge2"] and reply.grants == 1
