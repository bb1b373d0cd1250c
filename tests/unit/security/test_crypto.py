from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agents.security.crypto import (
    Identity,
    PublicIdentity,
    SessionCipher,
    new_nonce,
    new_symmetric_key,
    seal,
)
from agents.security.errors import ErrorCode, ProtocolError


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate("alice")


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate("bob")


def test_sign_verify(alice: Identity, bob: Identity) -> None:
    sig = alice.sign(b"hello")
    alice.public.verify(b"hello", sig)
    with pytest.raises(ProtocolError) as err:
        alice.public.verify(b"hellO", sig)
    assert err.value.code is ErrorCode.BAD_SIGNATURE
    with pytest.raises(ProtocolError) as err:
        bob.public.verify(b"hello", sig)
    assert err.value.code is ErrorCode.BAD_SIGNATURE


def test_sealed_box_roundtrip_and_binding(alice: Identity, bob: Identity) -> None:
    blob = bob.public.seal(b"secret", aad=b"hdr")
    assert b"secret" not in blob
    assert bob.open_sealed(blob, aad=b"hdr") == b"secret"
    for bad in (
        lambda: alice.open_sealed(blob, aad=b"hdr"),  # wrong recipient
        lambda: bob.open_sealed(blob, aad=b"hdR"),  # other associated data
        lambda: bob.open_sealed(blob[:-1] + bytes([blob[-1] ^ 1]), aad=b"hdr"),
        lambda: bob.open_sealed(blob[:5], aad=b"hdr"),
    ):
        with pytest.raises(ProtocolError) as err:
            bad()
        assert err.value.code is ErrorCode.DECRYPT_FAILED


def test_sealed_box_is_randomised(bob: Identity) -> None:
    assert seal(bob.public.enc_key, b"x") != seal(bob.public.enc_key, b"x")


def test_session_cipher() -> None:
    key = new_symmetric_key()
    c = SessionCipher(key)
    blob = c.encrypt(b"data", b"ad")
    assert SessionCipher(key).decrypt(blob, b"ad") == b"data"
    with pytest.raises(ProtocolError) as err:
        c.decrypt(blob, b"other ad")
    assert err.value.code is ErrorCode.DECRYPT_FAILED
    with pytest.raises(ProtocolError):
        SessionCipher(new_symmetric_key()).decrypt(blob, b"ad")


def test_nonces_are_fresh() -> None:
    assert len({new_nonce() for _ in range(100)}) == 100


def test_public_identity_roundtrip(alice: Identity) -> None:
    pub = PublicIdentity.from_bytes(alice.public.to_bytes())
    assert pub == alice.public
    assert pub.same_keys(alice.public)


@pytest.mark.parametrize("passphrase", [None, b"correct horse"])
def test_identity_file_is_0600_and_loads(
    tmp_path: Path, alice: Identity, passphrase: bytes | None
) -> None:
    path = tmp_path / "alice.key"
    old = os.umask(0)
    try:
        alice.save(path, passphrase)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path, passphrase)
    assert loaded.public == alice.public
    loaded.public.verify(b"m", loaded.sign(b"m"))
    with pytest.raises(FileExistsError):
        alice.save(path)


def test_group_readable_key_refused(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "k"
    alice.save(path)
    path.chmod(0o640)
    with pytest.raises(ProtocolError) as err:
        Identity.load(path)
    assert err.value.code is ErrorCode.INSECURE_KEY_FILE


def test_garbage_identity_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(ProtocolError) as err:
        Identity.load(path)
    assert err.value.code is ErrorCode.MALFORMED
