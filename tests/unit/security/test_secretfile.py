"""Secret files: raw keys and sealed tokens are used byte for byte, hex text is trimmed.

CI found the bug this guards: the SMF read its owner token with `read_bytes().strip()`, so a
token whose random MAC tag ended in a whitespace byte (~1 in 43) failed the audit with "bad tag".
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from agents.audit.owners import SealedTokenVerifier, seal_owner_token
from agents.security.secretfile import WatchedSecret, decode_secret
from agents.workloads.nms.auth import SharedKeyAuth

WHITESPACE = b" \t\n\r\x0b\x0c"


def test_raw_bytes_are_kept_exactly_and_hex_text_is_trimmed():
    raw = b"\n" + bytes(range(1, 31)) + b" "
    assert decode_secret(raw) == raw
    assert decode_secret(b"00ff10\n") == b"\x00\xff\x10"
    assert decode_secret(b"  \n") == b"  \n"  # not hex: as given (a key this short is refused)


def test_a_token_whose_tag_ends_in_whitespace_still_verifies(tmp_path: Path):
    key = bytes(range(32))
    for i in itertools.count():
        token = seal_owner_token(key, "nms-owner", 3600)
        if token[-1] in WHITESPACE:
            break
        assert i < 5000
    path = tmp_path / "smf-owner.token"
    path.write_bytes(token)
    assert SealedTokenVerifier(key).verify(decode_secret(path.read_bytes())) == "nms-owner"
    path.write_text(token.hex() + "\n")  # the hex form works too
    assert SealedTokenVerifier(key).verify(decode_secret(path.read_bytes())) == "nms-owner"


def test_an_nms_key_that_starts_and_ends_in_whitespace_is_used_whole(tmp_path: Path):
    key = b" " + bytes(range(100, 130)) + b"\n"
    path = tmp_path / "nms.key"
    path.write_bytes(key)
    path.chmod(0o600)
    assert SharedKeyAuth.from_file(path)._key == key == decode_secret(key)
    path.write_text(key.hex() + "\n")
    assert SharedKeyAuth.from_file(path)._key == key


def test_watched_secret_follows_a_renewed_file_and_keeps_the_last_value(tmp_path: Path) -> None:
    path = tmp_path / "smf-owner.token"
    path.write_text("aa01\n")
    watched = WatchedSecret(path)
    assert watched.value() == b"\xaa\x01"
    # the deploy reseals the token: written to a new file and renamed over the old one
    renewed = tmp_path / ".tmp"
    renewed.write_text("bb02ff\n")
    renewed.replace(path)
    assert watched.value() == b"\xbb\x02\xff"
    path.unlink()  # briefly missing (between a remove and a copy): the last value stands
    assert watched.value() == b"\xbb\x02\xff"
    path.write_bytes(b"raw token \x00")
    assert watched.value() == b"raw token \x00"


def test_watched_secret_needs_a_readable_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WatchedSecret(tmp_path / "missing.token")
