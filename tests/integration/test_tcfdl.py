"""TCFDL on loopback (tcfdl_lab.py): the paper's three cases under every transmission scheme
through real nats-servers, and the refusals (tampered, replayed, unknown function, unattested
proxy, wrong key, oversize, NATS killed mid-run). The NATS kill test runs last: it restarts
cluster a's server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import numpy as np
import pytest
from cryptography import x509

from agents.common.status import RemoteProtocolError
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import attestation, frame
from agents.tcfdl_client.offload import MAX_DATA, OffloadRefused, OffloadUnavailable
from agents.tcfdl_master.client import Subjects, wire
from agents.tcfdl_worker import mlp
from tests.integration.tcfdl_lab import CLIENT, PROXIES, TcfdlLab, wait_port

SCHEMES = ("none", "hse", "eae-umbral", "eae-p256")
SECURE = ("hse", "eae-umbral", "eae-p256")
#: function -> (instance serving it, masters on the path)
CASES = {"c1": ("tcfdl-worker.ma", ["master-a"]),
         "c2": ("tcfdl-worker.wa", ["master-a"]),
         "c3": ("tcfdl-worker.mb", ["master-a", "master-b"])}


@pytest.fixture(scope="module")
def tlab(lab_pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcfdlLab]:
    lab = TcfdlLab(lab_pki, tmp_path_factory.mktemp("tcfdl")).start()
    yield lab
    lab.stop()


def reference(data: bytes) -> bytes:
    """The MLP's answer computed here, independently of the agents: float64 forward pass of
    the generated weights on the task's bytes."""
    m = mlp.model()
    x = np.zeros(-(-len(data) // mlp.IN_DIM) * mlp.IN_DIM)
    x[:len(data)] = np.frombuffer(data, dtype=np.uint8) / 255.0
    h = np.maximum(x.reshape(-1, mlp.IN_DIM) @ m.w1.astype(np.float64) + m.b1, 0)
    return bytes(np.argmax(h @ m.w2.astype(np.float64) + m.b2, axis=1).astype(np.uint8))


def offload(lab: TcfdlLab, fn: str, data: bytes, scheme: str) -> Any:
    assert lab.client is not None
    return lab.run(lab.client.offload(fn, data, scheme=scheme, timeout=20))


def send(lab: TcfdlLab, fn: str, sealed: bytes, pending: Any, scheme: str) -> Any:
    assert lab.client is not None
    return lab.run(lab.client.send(fn, sealed, pending, scheme=scheme, timeout=20))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_three_cases_deliver_correct_results(tlab: TcfdlLab, scheme: str) -> None:
    for fn, (instance, masters) in CASES.items():
        data = os.urandom(3000 + 17 * len(fn))
        before = {cn: w.core.processed for cn, w in tlab.workers.items()}
        result = offload(tlab, fn, data, scheme)
        assert result.output == reference(data), (fn, scheme)
        after = {cn: w.core.processed for cn, w in tlab.workers.items()}
        assert {cn for cn in after if after[cn] != before[cn]} == {instance}
        hops = {k.split(".")[0] for k in result.phases if k.startswith("master-")}
        assert hops == set(masters), (fn, result.phases)
        if scheme != "none":
            assert all(result.phases[f"{m}.reencrypt"] > 0 for m in masters
                       if not (scheme == "eae-umbral" and m == "master-a" and fn == "c3"))


@pytest.mark.parametrize("scheme", SECURE)
def test_tampered_frame_refused(tlab: TcfdlLab, scheme: str) -> None:
    assert tlab.client is not None
    data = os.urandom(2048)
    sealed, pending, _ = tlab.client.prepare(scheme, "c3", data)
    worker = tlab.workers["tcfdl-worker.mb"]
    before = worker.core.processed
    tampered = bytearray(sealed)
    tampered[-40] ^= 0x01  # a ciphertext byte
    with pytest.raises(OffloadRefused, match=r"DECRYPT_FAILED|does not authenticate"):
        send(tlab, "c3", bytes(tampered), pending, scheme)
    assert worker.core.processed == before


@pytest.mark.parametrize("scheme", SECURE)
def test_replayed_frame_refused(tlab: TcfdlLab, scheme: str) -> None:
    assert tlab.client is not None
    data = os.urandom(1500)
    sealed, pending, _ = tlab.client.prepare(scheme, "c2", data)
    assert send(tlab, "c2", sealed, pending, scheme).output == reference(data)
    worker = tlab.workers["tcfdl-worker.wa"]
    before = worker.core.processed
    with pytest.raises(OffloadRefused, match="REPLAY"):
        send(tlab, "c2", sealed, pending, scheme)
    assert worker.core.processed == before


def test_unknown_function_clear_error(tlab: TcfdlLab) -> None:
    with pytest.raises(OffloadRefused, match="master-a: unknown function 'nope'"):
        offload(tlab, "nope", b"x", "hse")
    with pytest.raises(ProtocolError, match="function name"):
        offload(tlab, "bad.name", b"x", "none")


def test_unattested_proxy_refused(tlab: TcfdlLab) -> None:
    """A proxy running with a configuration outside the approved reference (debug_dump, which
    logs plaintext) is refused by the manager; a client that must send through it refuses, and
    the manager issues it no hop key."""
    assert tlab.manager_core is not None
    rogue = "tcfdl-proxy.rogue"
    tlab.manager_core.admit(rogue, "c")
    proc = tlab.start_proxy("c", rogue, {"debug_dump": True})
    wait_port(tlab.proxy_ports[rogue], proc, rogue, timeout=30)
    assert "attestation_refused" in (tlab.root / f"{rogue}.log").read_text()
    client = tlab.make_client(CLIENT, "a", rogue)
    with pytest.raises(OffloadRefused, match="not attested"):
        tlab.run(client.offload("c1", b"secret", scheme="hse"))
    with pytest.raises(RemoteProtocolError, match="not attested") as err:
        tlab.manager_as(rogue).hop_key(CLIENT)
    assert err.value.code == ErrorCode.NOT_AUTHORISED
    tlab.run(client.nc.close())
    # a peer expecting another measurement refuses even the attested proxy
    other = tlab.make_client(CLIENT, "a", PROXIES["a"], expected=[bytes(32)])
    with pytest.raises(OffloadRefused, match="not an approved one"):
        tlab.run(other.offload("c1", b"secret", scheme="eae-p256"))
    tlab.run(other.nc.close())
    # and the record it refuses is the manager's real, signed record of the approved code
    signed = tlab.manager_as(CLIENT).attestation(PROXIES["a"])
    ca = x509.load_pem_x509_certificate(tlab.pki.ca.cert_path.read_bytes())
    record = attestation.verify(signed, ca, proxy=PROXIES["a"],
                                expected=[attestation.reference_measurement()],
                                now_ns=time.time_ns())
    assert record.proxy == PROXIES["a"]


def test_wrong_key_fails(tlab: TcfdlLab) -> None:
    from agents.security.tcfdl import eae, hse
    from agents.security.tcfdl.pre import scheme as pre_scheme

    assert tlab.client is not None
    pending = tlab.client.prepare("none", "c3", b"")[1]
    wrong = hse.seal(os.urandom(16), function="c3", sender=CLIENT, receiver=PROXIES["a"],
                     hop=0, msg_id=hse.new_msg_id(), sent_ms=int(time.time() * 1000),
                     payload=b"k" * 16 + b"data")
    with pytest.raises(OffloadRefused, match=r"DECRYPT_FAILED|does not authenticate"):
        send(tlab, "c3", wrong, pending, "hse")
    # EAE: a provider key enrolled for another function (c2) sealing a task for c3
    manager = tlab.manager_as(CLIENT)
    party, fpub = manager.enroll("p256-paper", "c2", processor=False)
    frame_ = eae.seal(pre_scheme("p256-paper"), party, fpub, function="c3", sender=CLIENT,
                      msg_id=hse.new_msg_id(), sent_ms=int(time.time() * 1000),
                      payload=b"k" * 16 + b"data")
    before = tlab.workers["tcfdl-worker.mb"].core.processed
    with pytest.raises(OffloadRefused, match=r"DECRYPT_FAILED|does not"):
        send(tlab, "c3", frame_, pending, "eae-p256")
    assert tlab.workers["tcfdl-worker.mb"].core.processed == before


def test_oversize_task_refused(tlab: TcfdlLab) -> None:
    assert tlab.client is not None
    with pytest.raises(ProtocolError) as err:
        offload(tlab, "c1", b"\0" * (MAX_DATA + 1), "hse")
    assert err.value.code == ErrorCode.LIMIT_REACHED
    # the server's own bound: a raw message over max_payload is refused by NATS itself
    with pytest.raises(nats.errors.MaxPayloadError):
        tlab.run(tlab.client.nc.publish("tcfdl.in.a.c1", b"\0" * (frame.MAX_FRAME_SIZE + 1024**2)))


def test_eae_masters_never_see_plaintext(tlab: TcfdlLab) -> None:
    """Every byte string each master handled is recorded (witness files): under EAE no 32-byte
    window of the task's plaintext is among them; under `none` it is (the check can fail)."""
    witness = {c: Path(tlab.root / f"witness-{c}.bin") for c in ("a", "b")}
    data = os.urandom(8192)
    windows = [data[i:i + 32] for i in range(0, len(data) - 32, 509)]
    sizes = {c: p.stat().st_size for c, p in witness.items()}
    for scheme in ("eae-umbral", "eae-p256"):
        assert offload(tlab, "c3", data, scheme).output == reference(data)
    seen = {c: p.read_bytes()[sizes[c]:] for c, p in witness.items()}
    assert all(len(s) > 2 * len(data) for s in seen.values())  # both masters handled both
    for c, s in seen.items():
        assert not any(w in s for w in windows), f"master {c} saw plaintext under EAE"
    sizes = {c: p.stat().st_size for c, p in witness.items()}
    offload(tlab, "c3", data, "none")
    assert all(data[:32] in p.read_bytes()[sizes[c]:] for c, p in witness.items())


def test_a_probe_crosses_to_the_instance_without_a_master_and_never_amplifies(
        tlab: TcfdlLab) -> None:
    """The bare request/reply that a task's latency is compared to: from the client of
    cluster a to Case 3's instance in cluster b. It answers the zero bytes asked for, never
    more than the request carried; no master handles it and no function runs."""
    assert tlab.client is not None
    instance = CASES["c3"][0]
    masters = {c: m.handled for c, m in tlab.masters.items()}
    processed = tlab.workers[instance].core.processed
    data = os.urandom(64 * 1024)
    for asked, expected in ((100, 100), (0, 0), (len(data), len(data)),
                            (10 * len(data), len(data))):  # bounded by the request's size
        tlab.run(tlab.client.probe(instance, data, asked, timeout=20))
        got = tlab.run(tlab.client.nc.request(
            Subjects.probe(instance), data, timeout=20, headers={wire.PROBE_REPLY: str(asked)}))
        assert got.data == bytes(expected)
    got = tlab.run(tlab.client.nc.request(Subjects.probe(instance), data, timeout=20,
                                          headers={wire.PROBE_REPLY: "-5"}))
    assert got.data == b""
    assert {c: m.handled for c, m in tlab.masters.items()} == masters
    assert tlab.workers[instance].core.processed == processed
    with pytest.raises(OffloadUnavailable, match="does not answer probes"):
        tlab.run(tlab.client.probe("tcfdl-worker.nobody", data, 10, timeout=5))


def test_a_client_cannot_reach_an_instance_subject_directly(tlab: TcfdlLab) -> None:
    """The probe permission is the probe subject only: a client's publish to an instance's
    task subject (past the masters) is dropped by the server: no answer, not even the
    instance's refusal of a frame without a scheme."""
    assert tlab.client is not None
    worker = tlab.workers[CASES["c3"][0]]
    refused = worker.refused
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        tlab.run(tlab.client.nc.request(Subjects.instance(CASES["c3"][0]), b"x", timeout=1.5))
    assert worker.refused == refused


def test_registry_lists_instances(tlab: TcfdlLab) -> None:
    from agents.common.client import secure_channel
    from agents.tcfdl_master.client import MasterClient

    ch = secure_channel(tlab.address("master-a"), tlab.pki.ca.cert_path,
                        tlab.pki.client.cert_path, tlab.pki.client.key_path)
    try:
        assert MasterClient(ch).functions() == {"c1": ["tcfdl-worker.ma"],
                                                "c2": ["tcfdl-worker.wa"]}
    finally:
        ch.close()
    with pytest.raises(LookupError, match="unknown function 'never-registered'"):
        tlab.manager_as(CLIENT).lookup("never-registered")


def test_master_restart_keeps_its_streams(tlab: TcfdlLab) -> None:
    """A master started again on a server that already holds its JetStream streams (a restart
    of the deployed unit) starts: re-adding them at the server's storage limit is refused by
    nats-server, so the master keeps them; tasks still flow."""
    tlab.run(tlab.masters["a"]._streams())
    tlab.run(tlab.masters["a"]._streams())
    data = os.urandom(2000)
    assert offload(tlab, "c2", data, "hse").output == reference(data)


def test_nats_killed_mid_run(tlab: TcfdlLab) -> None:
    """Tasks acknowledged by JetStream before the server is killed are all answered after it
    restarts; while it is down, offloading and queueing fail with a clear error."""
    assert tlab.client is not None
    client = tlab.client
    inputs = {}
    for i in range(6):
        data = os.urandom(1000 + i)
        inputs[tlab.run(client.submit("c2", data, scheme="eae-p256"))] = data
    server = tlab.nats["a"]
    server.kill()
    with pytest.raises(OffloadUnavailable, match="cluster a"):
        tlab.run(client.offload("c1", b"x" * 100, scheme="none", timeout=1.5))
    with pytest.raises(OffloadUnavailable, match="nothing was acknowledged"):
        tlab.run(client.submit("c1", b"y" * 100, scheme="none", timeout=1.0))
    server.start()
    t0 = time.monotonic()
    got = tlab.run(client.collect(len(inputs), timeout=30), timeout=40)
    print(f"collected {len(got)} results {time.monotonic() - t0:.2f} s after the restart")
    assert set(got) == set(inputs)
    wrong = {t: got[t] for t, d in inputs.items() if got[t] != reference(d)}
    assert not wrong
