"""The TCFDL agents' domain rules without processes: the manager's admission, attestation and
key rules, the attestation record check a peer makes, the proxy's path through both PRE
schemes (two proxies, Case 3) ending at the instance, the master's routing, the NATS config
generator and the MLP workload."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import attestation, eae, hse, reply
from agents.security.tcfdl.pre import scheme as pre_scheme
from agents.tcfdl_manager.core import ManagerCore
from agents.tcfdl_master.natsconf import ClusterNats, Hub, dn, render
from agents.tcfdl_master.routing import FunctionTable, LocalRoute, RemoteRoute, Router
from agents.tcfdl_proxy.core import ProxyCore
from agents.tcfdl_worker import mlp
from agents.tcfdl_worker.core import InstanceCore

GOOD = attestation.reference_measurement()
NODES = {"tcfdl-proxy.a": "a", "tcfdl-proxy.b": "b", "tcfdl-client.a": "a",
         "tcfdl-worker.b": "b", "tcfdl-master.a": "a", "tcfdl-worker.a": "a"}


@pytest.fixture(scope="module")
def signer(lab_pki: Any) -> tuple[Any, bytes, x509.Certificate]:
    issued = lab_pki.issue("tcfdl-manager.ctl")
    key = load_pem_private_key(issued.key_path.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(lab_pki.ca.cert_path.read_bytes())
    return key, issued.cert_path.read_bytes(), ca


def manager(signer: Any) -> ManagerCore:
    key, cert, _ = signer
    return ManagerCore(hop_secret=os.urandom(32), references=[GOOD], nodes=dict(NODES),
                       signer=lambda r: attestation.sign(key, cert, r))


def test_attestation_signed_and_verified(signer: Any, lab_pki: Any) -> None:
    m = manager(signer)
    signed = m.attest("tcfdl-proxy.a", GOOD)
    now = time.time_ns()
    rec = attestation.verify(signed, signer[2], proxy="tcfdl-proxy.a", expected=[GOOD],
                             now_ns=now)
    assert rec.measurement == GOOD
    cases = {
        "wrong proxy": dict(proxy="tcfdl-proxy.b", expected=[GOOD], now_ns=now),
        "other measurement": dict(proxy="tcfdl-proxy.a", expected=[bytes(32)], now_ns=now),
        "expired": dict(proxy="tcfdl-proxy.a", expected=[GOOD], now_ns=now + 7200 * 10**9),
    }
    for what, kw in cases.items():
        with pytest.raises(ProtocolError):
            attestation.verify(signed, signer[2], **kw)  # type: ignore[arg-type]
            pytest.fail(what)
    forged = attestation.SignedRecord(signed.record.replace(b"tcfdl-proxy.a", b"tcfdl-proxy.b"),
                                      signed.signature, signed.certificate)
    with pytest.raises(ProtocolError) as err:
        attestation.verify(forged, signer[2], proxy="tcfdl-proxy.b", expected=[GOOD], now_ns=now)
    assert err.value.code == ErrorCode.BAD_SIGNATURE
    # a record signed by a non-manager certificate of the same CA is refused
    other = lab_pki.issue("tcfdl-proxy.a")
    okey = load_pem_private_key(other.key_path.read_bytes(), password=None)
    self_signed = attestation.sign(okey, other.cert_path.read_bytes(),
                                   attestation.Record("tcfdl-proxy.a", GOOD, now, now + 10**12))
    with pytest.raises(ProtocolError) as err:
        attestation.verify(self_signed, signer[2], proxy="tcfdl-proxy.a", expected=[GOOD],
                           now_ns=now)
    assert err.value.code == ErrorCode.NOT_AUTHORISED


def test_measurement_covers_code_and_config(tmp_path: Path) -> None:
    root = tmp_path / "agents"
    (root / "tcfdl_proxy").mkdir(parents=True)
    (root / "security" / "tcfdl").mkdir(parents=True)
    (root / "tcfdl_proxy" / "core.py").write_text("x = 1\n")
    (root / "security" / "tcfdl" / "hse.py").write_text("y = 2\n")
    files = attestation.proxy_code_files(root)
    base = attestation.measure(files, {"debug_dump": False}, root)
    # independent expectation of the documented construction
    h = hashlib.sha256(b"tcfdl-proxy-measurement-v1\0")
    for rel, text in (("security/tcfdl/hse.py", b"y = 2\n"), ("tcfdl_proxy/core.py", b"x = 1\n")):
        h.update(rel.encode() + b"\0" + hashlib.sha256(text).digest())
    from agents.security import encoding
    h.update(encoding.encode({"debug_dump": False}))
    assert base == h.digest()
    assert attestation.measure(files, {"debug_dump": True}, root) != base
    (root / "tcfdl_proxy" / "core.py").write_text("x = 2\n")
    assert attestation.measure(files, {"debug_dump": False}, root) != base


def test_manager_key_rules(signer: Any) -> None:
    m = manager(signer)
    with pytest.raises(ProtocolError) as err:  # not attested yet
        m.hop_key("tcfdl-client.a", "tcfdl-proxy.a")
    assert err.value.code == ErrorCode.NOT_AUTHORISED
    with pytest.raises(ProtocolError) as err:  # a bad measurement is refused
        m.attest("tcfdl-proxy.a", bytes(32))
    assert err.value.code == ErrorCode.KEY_MISMATCH
    m.attest("tcfdl-proxy.a", GOOD)
    m.attest("tcfdl-proxy.b", GOOD)
    k = m.hop_key("tcfdl-client.a", "tcfdl-proxy.a")
    assert k == m.hop_key("tcfdl-proxy.a", "tcfdl-client.a") and len(k) == 16
    assert m.hop_key("tcfdl-proxy.a", "tcfdl-proxy.b") != k
    refusals = [("tcfdl-client.a", "tcfdl-worker.a"),   # no proxy on the hop
                ("tcfdl-client.a", "tcfdl-proxy.b"),    # proxy of another cluster
                ("tcfdl-client.x", "tcfdl-proxy.a")]    # not admitted
    for a, b in refusals:
        with pytest.raises(ProtocolError):
            m.hop_key(a, b)
    m.enroll("tcfdl-worker.b", "p256-paper", "f", processor=True)
    with pytest.raises(ProtocolError) as err:  # RK only to the instance's own cluster proxy
        m.rekey("tcfdl-proxy.a", "p256-paper", "f", "tcfdl-worker.b", "to-processor")
    assert err.value.code == ErrorCode.NOT_AUTHORISED
    assert m.rekey("tcfdl-proxy.b", "p256-paper", "f", "tcfdl-worker.b", "to-processor")
    with pytest.raises(ProtocolError):
        m.attest("tcfdl-proxy.b", bytes(32))
    with pytest.raises(ProtocolError):  # its record was withdrawn: no more keys
        m.rekey("tcfdl-proxy.b", "p256-paper", "f", "tcfdl-worker.b", "to-processor")
    with pytest.raises(LookupError):
        m.lookup("tcfdl-client.a", "f")
    m.register_function("tcfdl-master.a", "f")
    assert m.lookup("tcfdl-client.a", "f") == ("a", "tcfdl-proxy.a")


class _Keys:
    def __init__(self, m: ManagerCore, me: str) -> None:
        self.m, self.me = m, me

    def hop_key(self, peer: str) -> bytes:
        return self.m.hop_key(self.me, peer)

    def rekey(self, scheme: str, function: str, instance: str, stage: str) -> bytes:
        rk = self.m.rekey(self.me, scheme, function, instance, stage)
        return b"" if rk is None else rk.material


@pytest.mark.parametrize("scheme", ["hse", "eae-umbral", "eae-p256"])
def test_case3_path_through_two_proxies(signer: Any, scheme: str) -> None:
    m = manager(signer)
    for p in ("tcfdl-proxy.a", "tcfdl-proxy.b"):
        m.attest(p, GOOD)
    pa, pb = (ProxyCore(p, _Keys(m, p)) for p in ("tcfdl-proxy.a", "tcfdl-proxy.b"))
    inst = InstanceCore("tcfdl-worker.b", "tcfdl-proxy.b", {"f": lambda d: d[::-1]},
                        hop_key=lambda peer: m.hop_key("tcfdl-worker.b", peer),
                        enrolled=lambda pre, fn: (lambda e: (e.party, e.function_public))(
                            m.enroll("tcfdl-worker.b", pre, fn, processor=True)))
    key, data, msg_id, now = os.urandom(16), os.urandom(1000), hse.new_msg_id(), 10**6
    plain = reply.wrap_task(key, data)
    if scheme == "hse":
        f0 = hse.seal(m.hop_key("tcfdl-client.a", "tcfdl-proxy.a"), function="f",
                      sender="tcfdl-client.a", receiver="tcfdl-proxy.a", hop=0, msg_id=msg_id,
                      sent_ms=now, payload=plain)
    else:
        pre = "umbral" if scheme == "eae-umbral" else "p256-paper"
        e = m.enroll("tcfdl-client.a", pre, "f", processor=False)
        m.enroll("tcfdl-worker.b", pre, "f", processor=True)
        f0 = eae.seal(pre_scheme(pre), e.party, e.function_public, function="f",
                      sender="tcfdl-client.a", msg_id=msg_id, sent_ms=now, payload=plain)
    f1, _ = pa.transform(scheme, f0, function="f", next_hop="tcfdl-proxy.b", first=True,
                         now_ms=now)
    f2, _ = pb.transform(scheme, f1, function="f", next_hop="tcfdl-worker.b",
                         instance="tcfdl-worker.b", now_ms=now)
    for f in (f0, f1, f2):
        assert data not in f
    out, _phases = inst.handle(scheme, "f", f2, now_ms=now)
    assert reply.open_reply(key, msg_id, out) == data[::-1]
    with pytest.raises(ProtocolError) as err:  # the same frame again
        inst.handle(scheme, "f", f2, now_ms=now)
    assert err.value.code == ErrorCode.REPLAY
    assert inst.kept_answer(scheme, f2) == out  # a marked redelivery gets the same answer
    with pytest.raises(ProtocolError):  # routed as another function
        pa.transform(scheme, f0, function="g", next_hop="tcfdl-proxy.b", first=True, now_ms=now)


def test_routing() -> None:
    table = FunctionTable()
    looked: list[str] = []

    def lookup(fn: str) -> tuple[str, str]:
        looked.append(fn)
        if fn == "remote":
            return "b", "tcfdl-proxy.b"
        if fn == "here":
            return "a", "tcfdl-proxy.a"
        raise LookupError(f"unknown function {fn!r}")

    r = Router("a", table, lookup)
    assert table.register("local", "w1") and not table.register("local", "w2")
    assert [r.route("local", transit=False) for _ in range(3)] == [
        LocalRoute("w1"), LocalRoute("w2"), LocalRoute("w1")]
    assert r.route("remote", transit=False) == RemoteRoute("b", "tcfdl-proxy.b")
    r.route("remote", transit=False)
    assert looked == ["remote"]  # cached
    with pytest.raises(LookupError, match="no instance"):
        r.route("remote", transit=True)  # transit is never forwarded again
    with pytest.raises(LookupError, match="unknown function"):
        r.route("nope", transit=False)
    with pytest.raises(LookupError, match="no running instance"):
        r.route("here", transit=False)


def test_nats_config(tmp_path: Path) -> None:
    c = ClusterNats("b", "0.0.0.0:4222", tmp_path / "s.crt", tmp_path / "s.key",
                    tmp_path / "ca.crt", tmp_path / "js", masters=["tcfdl-master.m"],
                    workers=["tcfdl-worker.w"], clients=["tcfdl-client.c"],
                    hubs=[Hub("a", "10.0.0.1:7422")])
    text = render(c)
    assert "verify_and_map: true" in text
    assert "no_auth_user" not in text and "password" not in text
    assert text.count("{user: ") == 3
    assert f'"{dn("tcfdl-worker.w")}"' in text and dn("tcfdl-worker.w") == \
        "CN=tcfdl-worker.w,O=edgeferry lab"
    assert 'url: "tls://10.0.0.1:7422"' in text and 'domain: "b"' in text
    assert "max_payload: 9437184" in text
    with pytest.raises(ValueError):
        render(ClusterNats("B!", "0.0.0.0:4222", tmp_path, tmp_path, tmp_path, tmp_path,
                           masters=["tcfdl-master.m"]))


def test_mlp_matches_hand_computation() -> None:
    m = mlp.model()
    assert np.array_equal(m.w1, mlp.model().w1)
    data = bytes(range(200)) + bytes(100)  # two rows, the second zero-padded
    x = np.zeros((2, mlp.IN_DIM))
    for i, b in enumerate(data):
        x[i // mlp.IN_DIM, i % mlp.IN_DIM] = b / 255.0
    expect = []
    for row in x:
        h = [max(0.0, sum(row[k] * float(m.w1[k, j]) for k in range(mlp.IN_DIM)) + float(m.b1[j]))
             for j in range(mlp.HIDDEN)]
        logits = [sum(h[j] * float(m.w2[j, o]) for j in range(mlp.HIDDEN)) + float(m.b2[o])
                  for o in range(mlp.OUT)]
        expect.append(max(range(mlp.OUT), key=lambda o: logits[o]))
    assert list(mlp.infer(data)) == expect


class _RecordingProxy:
    """A proxy client that hands each request to a ProxyCore and keeps what it was sent."""

    def __init__(self, core: ProxyCore, now: int) -> None:
        self.core, self.now, self.sent = core, now, []  # type: list[bytes]

    def transform(self, scheme: str, data: bytes, **kw: Any) -> tuple[bytes, int]:
        self.sent.append(data)
        return self.core.transform(scheme, data, now_ms=self.now, **kw)


@pytest.mark.parametrize("scheme", ["eae-umbral", "eae-p256"])
def test_under_eae_a_master_sends_its_proxy_the_envelope_and_keeps_the_ciphertext(
        signer: Any, scheme: str) -> None:
    from agents.tcfdl_master.agent import through_proxy

    m = manager(signer)
    for p in ("tcfdl-proxy.a", "tcfdl-proxy.b"):
        m.attest(p, GOOD)
    now = 10**6
    pa, pb = (_RecordingProxy(ProxyCore(p, _Keys(m, p)), now)
              for p in ("tcfdl-proxy.a", "tcfdl-proxy.b"))
    inst = InstanceCore("tcfdl-worker.b", "tcfdl-proxy.b", {"f": lambda d: d[::-1]},
                        hop_key=lambda peer: m.hop_key("tcfdl-worker.b", peer),
                        enrolled=lambda pre, fn: (lambda e: (e.party, e.function_public))(
                            m.enroll("tcfdl-worker.b", pre, fn, processor=True)))
    pre = "umbral" if scheme == "eae-umbral" else "p256-paper"
    e = m.enroll("tcfdl-client.a", pre, "f", processor=False)
    m.enroll("tcfdl-worker.b", pre, "f", processor=True)
    key, data, msg_id = os.urandom(16), os.urandom(256 * 1024), hse.new_msg_id()
    f0 = eae.seal(pre_scheme(pre), e.party, e.function_public, function="f",
                  sender="tcfdl-client.a", msg_id=msg_id, sent_ms=now,
                  payload=reply.wrap_task(key, data))
    f1, _ = through_proxy(pa, scheme, f0, "f", "tcfdl-proxy.b", True, "")  # type: ignore[arg-type]
    f2, _ = through_proxy(pb, scheme, f1, "f", "tcfdl-worker.b", False,  # type: ignore[arg-type]
                          "tcfdl-worker.b")
    body = f0[-(len(data) + 16 + 16):]  # task (reply key + data) ciphertext and its GCM tag
    for proxy in (pa, pb):
        (sent,) = proxy.sent
        assert len(sent) < 4096 and body[:64] not in sent  # the envelope, not the ciphertext
    assert f1.endswith(body) and f2.endswith(body) and f2 != f0  # capsule changed, body not
    out, _phases = inst.handle(scheme, "f", f2, now_ms=now)
    assert reply.open_reply(key, msg_id, out) == data[::-1]
    # the same transformation on the whole frame gives the same frame
    whole = ProxyCore("tcfdl-proxy.a", _Keys(m, "tcfdl-proxy.a"))
    g1, _ = whole.transform(scheme, f0, function="f", first=True, now_ms=now)
    assert len(g1) == len(f1) and g1.endswith(body)


def test_only_an_eae_frame_is_transformed_as_its_envelope(signer: Any) -> None:
    m = manager(signer)
    m.attest("tcfdl-proxy.a", GOOD)
    proxy = ProxyCore("tcfdl-proxy.a", _Keys(m, "tcfdl-proxy.a"))
    e = m.enroll("tcfdl-client.a", "p256-paper", "f", processor=False)
    f0 = eae.seal(pre_scheme("p256-paper"), e.party, e.function_public, function="f",
                  sender="tcfdl-client.a", msg_id=hse.new_msg_id(), sent_ms=10**6,
                  payload=b"x" * 100)
    for scheme in ("hse", "none"):
        with pytest.raises(ProtocolError, match="envelope alone") as err:
            proxy.transform(scheme, f0, function="f", envelope_only=True)
        assert err.value.code == ErrorCode.MALFORMED
    envelope = f0[:4 + int.from_bytes(f0[:4], "big")]
    for bad in (f0, envelope + b"\0", envelope[:-1], b"\0\0"):  # a body, or a wrong length
        with pytest.raises(ProtocolError) as err:
            proxy.transform("eae-p256", bad, function="f", first=True, envelope_only=True)
        assert err.value.code == ErrorCode.MALFORMED
    out, _ = proxy.transform("eae-p256", envelope, function="f", first=True,
                             envelope_only=True)
    assert 4 < len(out) < 4096 and out != envelope
