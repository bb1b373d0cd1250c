"""Execution grants (agents/security/grant.py): what a grant binds, its expiry, single use,
the signer's certificate, and the replay table's bound. Each refusal has a positive control."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agents.security import encoding
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.grant import (
    ExecutionGrant,
    GrantVerifier,
    ReplayTable,
    SignedGrant,
    input_digest,
    issue_grant,
)
from edgeferry.pki import IssuedCert, LabCA

DATA = b"input bytes of one execution"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabCA, Path]:
    root = tmp_path_factory.mktemp("grant-pki")
    return LabCA.create(root / "ca"), root


def _issued(ca: tuple[LabCA, Path], cn: str) -> IssuedCert:
    return ca[0].issue(cn, ca[1] / "issued", server=False, client=True)


def _sign(issued: IssuedCert, **kw: object) -> SignedGrant:
    key = load_pem_private_key(issued.key_path.read_bytes(), password=None)
    args: dict[str, object] = {"node": "edge1", "service": "filter",
                               "data_digest": input_digest(DATA), "request_id": "r1",
                               "transition": "t1", "ttl_s": 30.0}
    args.update(kw)
    return issue_grant(key, issued.cert_path.read_bytes(), **args)[1]  # type: ignore[arg-type]


def _verifier(ca: tuple[LabCA, Path], capacity: int = 100) -> GrantVerifier:
    cert = x509.load_pem_x509_certificate(ca[0].cert_path.read_bytes())
    return GrantVerifier("edge1", cert, ReplayTable(capacity))


def _code(fn: object) -> ErrorCode | None:
    try:
        fn()  # type: ignore[operator]
    except ProtocolError as err:
        return err.code
    return None


def test_a_grant_binds_node_service_input_and_is_single_use(ca: tuple[LabCA, Path]) -> None:
    composer = _issued(ca, "composer.control")
    v = _verifier(ca)
    grant = _sign(composer)
    decoded = encoding.decode_as(ExecutionGrant, grant.payload)
    assert (decoded.node, decoded.service, decoded.input_digest) == (
        "edge1", "filter", input_digest(DATA))
    assert v.verify(grant, service="filter", data=DATA).request_id == "r1"
    assert _code(lambda: v.verify(grant, service="filter", data=DATA)) is ErrorCode.REPLAY
    fresh = _sign(composer)
    assert _code(lambda: v.verify(fresh, service="transcode", data=DATA)) is (
        ErrorCode.NOT_AUTHORISED)
    assert _code(lambda: v.verify(fresh, service="filter", data=DATA + b"!")) is (
        ErrorCode.NOT_AUTHORISED)
    assert _code(lambda: v.verify(_sign(composer, node="edge2"), service="filter",
                                  data=DATA)) is ErrorCode.WRONG_RECIPIENT
    # the refusals above consumed nothing: the fresh grant still runs once
    assert _code(lambda: v.verify(fresh, service="filter", data=DATA)) is None


def test_expiry_and_validity_window(ca: tuple[LabCA, Path]) -> None:
    import time
    composer = _issued(ca, "composer.control")
    v = _verifier(ca)
    now = time.time_ns()
    old = _sign(composer, ttl_s=5.0, now_ns=now - 60 * 10**9)
    assert _code(lambda: v.verify(old, service="filter", data=DATA)) is ErrorCode.EXPIRED
    assert _code(lambda: v.verify(old, service="filter", data=DATA,
                                  now_ns=now - 58 * 10**9)) is None  # valid back then
    future = _sign(composer, now_ns=now + 3600 * 10**9)
    assert _code(lambda: v.verify(future, service="filter", data=DATA)) is ErrorCode.EXPIRED
    long = _sign(composer, ttl_s=3600.0)
    assert _code(lambda: v.verify(long, service="filter", data=DATA)) is ErrorCode.MALFORMED


def test_only_a_lab_ca_composer_may_sign(ca: tuple[LabCA, Path], tmp_path: Path) -> None:
    v = _verifier(ca)
    edge = _issued(ca, "blockcache.edge2")
    assert _code(lambda: v.verify(_sign(edge), service="filter", data=DATA)) is (
        ErrorCode.NOT_AUTHORISED)
    other = LabCA.create(tmp_path / "other")
    impostor = other.issue("composer.control", tmp_path / "x", server=False, client=True)
    assert _code(lambda: v.verify(_sign(impostor), service="filter", data=DATA)) is (
        ErrorCode.UNKNOWN_PRINCIPAL)
    composer = _issued(ca, "composer.control")
    a, b = _sign(composer, service="filter"), _sign(composer, service="transcode")
    swapped = SignedGrant(b.payload, a.signature, a.certificate)
    assert _code(lambda: v.verify(swapped, service="transcode", data=DATA)) is (
        ErrorCode.BAD_SIGNATURE)
    assert _code(lambda: v.verify(b, service="transcode", data=DATA)) is None


def test_replay_table_is_bounded_and_forgets_only_expired_nonces() -> None:
    table = ReplayTable(capacity=2)
    table.consume(b"a" * 16, expires_at_ns=100, now_ns=0)
    table.consume(b"b" * 16, expires_at_ns=200, now_ns=0)
    with pytest.raises(ProtocolError) as err:
        table.consume(b"c" * 16, expires_at_ns=300, now_ns=50)  # both still live: full
    assert err.value.code is ErrorCode.LIMIT_REACHED
    table.consume(b"c" * 16, expires_at_ns=300, now_ns=150)  # "a" expired and is dropped
    assert len(table) == 2
    with pytest.raises(ProtocolError) as err:
        table.consume(b"b" * 16, expires_at_ns=200, now_ns=150)
    assert err.value.code is ErrorCode.REPLAY
