"""Both PRE schemes of TCFDL's EAE (paper section 3.2): round trips, wrong keys, tampered
capsules, and proxies that never see the key or the plaintext. The paper's scheme is also
checked against fastecdsa's full-point P-256 arithmetic, an implementation independent of the
OpenSSL x-only one it runs on."""

from __future__ import annotations

import os

import pytest
from fastecdsa.curve import P256
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.security.errors import ErrorCode, ProtocolError
from agents.security.tcfdl import eae, pre, pre_p256
from agents.security.tcfdl.pre import PartyKey, PreScheme, ReKey
from agents.security.tcfdl.replay import ReplayCache

SCHEMES = pre.scheme_names()
SIZES = (0, 1, 1024, 256 * 1024, 4 * 1024 * 1024)


class Path:
    """One function with a provider i and processor j enrolled by the TA."""

    def __init__(self, name: str) -> None:
        self.s: PreScheme = pre.scheme(name)
        self.fn = self.s.function_key()
        self.pi, self.rk_i = self.s.enroll_provider(self.fn)
        self.pj, self.rk_j = self.s.enroll_processor(self.fn)

    def rekeys(self) -> list[ReKey]:
        return [rk for rk in (self.rk_i, self.rk_j) if rk is not None]

    def through(self, capsule: bytes) -> bytes:
        for rk in self.rekeys():
            capsule = self.s.reencrypt(rk, capsule)
        return capsule


@pytest.fixture(params=SCHEMES)
def path(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


def _seal(p: Path, payload: bytes, msg_id: bytes | None = None) -> bytes:
    return eae.seal(p.s, p.pi, p.fn.public, function="resnet", sender="app-i",
                    msg_id=msg_id or os.urandom(16), sent_ms=1000, payload=payload)


def test_scheme_by_name_and_unknown_name() -> None:
    assert [pre.scheme(n).name for n in SCHEMES] == ["p256-paper", "umbral"]
    with pytest.raises(ProtocolError) as e:
        pre.scheme("rsa")
    assert e.value.code is ErrorCode.MALFORMED and "p256-paper" in e.value.message


def test_paths_have_the_papers_number_of_reencryptions() -> None:
    assert len(Path("p256-paper").rekeys()) == 2  # i -> f, f -> j
    assert len(Path("umbral").rekeys()) == 1      # f -> j


@pytest.mark.parametrize("size", SIZES)
def test_eae_round_trip(path: Path, size: int) -> None:
    payload = os.urandom(size)
    data = _seal(path, payload)
    for rk in path.rekeys():
        data = eae.reencrypt(path.s, rk, data)
    msg = eae.open_frame(path.s, path.pj, path.fn.public, data, replay=ReplayCache(), now_ms=1000)
    assert msg.payload == payload and msg.header.function == "resnet"


def test_capsule_round_trip(path: Path) -> None:
    key = os.urandom(16)
    assert path.s.decapsulate(path.pj, path.fn.public,
                              path.through(path.s.encapsulate(key, path.pi, path.fn.public))) == key


def test_processor_of_another_function_cannot_decrypt(path: Path) -> None:
    other = Path(path.s.name)
    data = _seal(path, b"task data")
    for rk in path.rekeys():
        data = eae.reencrypt(path.s, rk, data)
    with pytest.raises(ProtocolError) as e:
        eae.open_frame(path.s, other.pj, path.fn.public, data, replay=None, now_ms=1000)
    assert e.value.code is ErrorCode.DECRYPT_FAILED


def test_wrong_secret_key_gives_no_key(path: Path) -> None:
    key = os.urandom(16)
    capsule = path.through(path.s.encapsulate(key, path.pi, path.fn.public))
    wrong = PartyKey(path.s.name, Path(path.s.name).pj.secret, path.pj.public)
    try:
        got = path.s.decapsulate(wrong, path.fn.public, capsule)
    except ProtocolError as e:
        assert e.code is ErrorCode.DECRYPT_FAILED
    else:  # the paper's scheme has no capsule integrity: another key comes out
        assert got != key


def test_skipping_a_proxy_gives_no_key() -> None:
    p = Path("p256-paper")
    key = os.urandom(16)
    capsule = p.s.encapsulate(key, p.pi, p.fn.public)
    assert p.rk_i is not None
    assert p.s.decapsulate(p.pj, p.fn.public, p.s.reencrypt(p.rk_i, capsule)) != key
    assert p.s.decapsulate(p.pj, p.fn.public, p.s.reencrypt(p.rk_j, capsule)) != key


@pytest.mark.parametrize("where", ["capsule", "header", "body"])
def test_tampered_reencryption_is_refused(path: Path, where: str) -> None:
    data = _seal(path, b"x" * 2048)
    for rk in path.rekeys():
        data = eae.reencrypt(path.s, rk, data)
    env, body = eae.read_envelope(data, path.s)
    if where == "capsule":
        cap = bytearray(env.capsule)
        cap[len(cap) // 2] ^= 0x01  # p256-paper: the Padding half of EK_1
        env = eae.EaeEnvelope(env.header, bytes(cap))
    elif where == "header":
        env = eae.EaeEnvelope(eae.EaeHeader(**{**env.header.__dict__, "sender": "mallory"}),
                              env.capsule)
    tampered_body = bytearray(body)
    if where == "body":
        tampered_body[100] ^= 0x80
    from agents.security import encoding
    from agents.security.tcfdl import frame
    bad = frame.pack(encoding.encode(env), bytes(tampered_body))
    with pytest.raises(ProtocolError) as e:
        eae.open_frame(path.s, path.pj, path.fn.public, bad, replay=None, now_ms=1000)
    assert e.value.code in (ErrorCode.DECRYPT_FAILED, ErrorCode.MALFORMED)


def test_proxy_never_holds_the_key_or_plaintext(path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """What each proxy is given and gives back contains neither the AES key nor the plaintext."""
    keys: list[bytes] = []
    real = eae.new_payload_key

    def recording() -> bytes:
        keys.append(real())
        return keys[-1]

    monkeypatch.setattr(eae, "new_payload_key", recording)
    payload = b"secret task: " + os.urandom(4000)
    data = _seal(path, payload)
    assert len(keys) == 1
    seen: list[bytes] = []
    for rk in path.rekeys():
        out = eae.reencrypt(path.s, rk, data)
        seen += [data, out, rk.material]
        data = out
    assert seen
    for blob in seen:
        assert keys[0] not in blob
        assert payload[:32] not in blob and payload[-32:] not in blob
    assert eae.open_frame(path.s, path.pj, path.fn.public, data, replay=None,
                          now_ms=1000).payload == payload


def test_replay_and_stale_frames_refused(path: Path) -> None:
    data = _seal(path, b"once")
    for rk in path.rekeys():
        data = eae.reencrypt(path.s, rk, data)
    cache = ReplayCache(window_ms=10_000)
    eae.open_frame(path.s, path.pj, path.fn.public, data, replay=cache, now_ms=1000)
    with pytest.raises(ProtocolError) as e:
        eae.open_frame(path.s, path.pj, path.fn.public, data, replay=cache, now_ms=1001)
    assert e.value.code is ErrorCode.REPLAY
    with pytest.raises(ProtocolError) as e:
        eae.open_frame(path.s, path.pj, path.fn.public, data, replay=ReplayCache(window_ms=10_000),
                       now_ms=20_000)
    assert e.value.code is ErrorCode.EXPIRED


def test_oversize_task_and_capsule_refused(path: Path) -> None:
    from agents.security.tcfdl import frame
    with pytest.raises(ProtocolError) as e:
        _seal(path, bytes(frame.MAX_TASK_SIZE + 1))
    assert e.value.code is ErrorCode.LIMIT_REACHED
    with pytest.raises(ProtocolError) as e:
        path.s.reencrypt(path.rekeys()[-1], bytes(pre.MAX_CAPSULE_SIZE + 1))
    assert e.value.code is ErrorCode.LIMIT_REACHED


def test_keys_of_another_scheme_refused() -> None:
    a, b = Path("p256-paper"), Path("umbral")
    with pytest.raises(ProtocolError) as e:
        a.s.reencrypt(b.rk_j, b"")
    assert e.value.code is ErrorCode.KEY_MISMATCH


def test_umbral_kfrag_for_another_processor_refused() -> None:
    p, q = Path("umbral"), Path("umbral")
    capsule = p.s.encapsulate(os.urandom(16), p.pi, p.fn.public)
    with pytest.raises(ProtocolError) as e:  # a cfrag made with q's kfrag does not verify for p
        p.s.decapsulate(p.pj, p.fn.public, q.s.reencrypt(q.rk_j, capsule))
    assert e.value.code is ErrorCode.DECRYPT_FAILED


def test_p256_point_not_on_curve_refused() -> None:
    p = Path("p256-paper")
    capsule = bytearray(p.s.encapsulate(os.urandom(16), p.pi, p.fn.public))
    # the smallest x whose x^3 + ax + b is a non-square mod p (Euler's criterion): no point has it
    x = next(x for x in range(1, 100)
             if pow((x**3 + P256.a * x + P256.b) % P256.p, (P256.p - 1) // 2, P256.p) != 1)
    capsule[33:] = x.to_bytes(32, "big")
    assert p.rk_i is not None
    with pytest.raises(ProtocolError) as e:
        p.s.reencrypt(p.rk_i, bytes(capsule))
    assert e.value.code is ErrorCode.MALFORMED


@settings(max_examples=25, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), pad=st.binary(min_size=16, max_size=16),
       r=st.integers(1, pre_p256.Q - 1), x_i=st.integers(1, pre_p256.Q - 1),
       x_j=st.integers(1, pre_p256.Q - 1), f=st.integers(1, pre_p256.Q - 1))
def test_paper_scheme_matches_full_point_arithmetic(key: bytes, pad: bytes, r: int, x_i: int,
                                                    x_j: int, f: int) -> None:
    """Eq. (1)-(5) computed with fastecdsa's points: EK_1 = (Key||Padding) XOR x(rP),
    EK_2 = x(r x_i P), after ReEnc with f/x_i then x_j/f: x(r x_j P); Dec recovers Key."""
    q, g = pre_p256.Q, P256.G
    capsule = pre_p256.encapsulate_with(key, x_i, r, pad)
    ek1, ek2 = pre_p256.split_capsule(capsule)
    assert ek1 == bytes(a ^ b for a, b in zip(key + pad, (r * g).x.to_bytes(32, "big"),
                                              strict=True))
    assert ek2 == (r * x_i % q * g).x.to_bytes(32, "big")
    s = pre_p256.PaperP256()
    to_f = ReKey(s.name, pre.TO_FUNCTION, (f * pow(x_i, -1, q) % q).to_bytes(32, "big"))
    to_j = ReKey(s.name, pre.TO_PROCESSOR, (x_j * pow(f, -1, q) % q).to_bytes(32, "big"))
    after_f = s.reencrypt(to_f, capsule)
    assert after_f[33:] == (r * f % q * g).x.to_bytes(32, "big")
    after_j = s.reencrypt(to_j, after_f)
    assert after_j[1:33] == ek1 and after_j[33:] == (r * x_j % q * g).x.to_bytes(32, "big")
    processor = PartyKey(s.name, x_j.to_bytes(32, "big"), b"")
    assert s.decapsulate(processor, b"", after_j) == key
