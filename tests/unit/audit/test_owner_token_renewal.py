"""The SMF owner token the deploy seals: short-lived, renewed on deploy only when needed."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from agents.audit.domain import InvalidOwnerToken
from agents.audit.owners import (
    SealedTokenVerifier,
    renew_token_file,
    seal_owner_token,
    token_expiry,
)

DAY = 86400.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit-owner.key"
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o600)
    return path


def test_token_expiry_reads_the_sealed_expiry():
    token = seal_owner_token(secrets.token_bytes(32), "co", 7 * DAY, clock=lambda: T0)
    assert token_expiry(token) == pytest.approx(T0 + 7 * DAY, abs=0.001)
    with pytest.raises(ValueError):
        token_expiry(b"EFO1" + b"\0" * 8)


def test_a_missing_token_is_sealed_for_the_configured_time(key_file, tmp_path):
    token = tmp_path / "smf-owner.token"
    assert renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=Clock(T0))
    assert token.stat().st_mode & 0o777 == 0o600
    assert token_expiry(token.read_bytes()) == pytest.approx(T0 + 7 * DAY, abs=0.001)
    verifier = SealedTokenVerifier(key_file.read_bytes(), clock=lambda: T0 + 7 * DAY - 1)
    assert verifier.verify(token.read_bytes()) == "co"
    late = SealedTokenVerifier(key_file.read_bytes(), clock=lambda: T0 + 7 * DAY + 1)
    with pytest.raises(InvalidOwnerToken):
        late.verify(token.read_bytes())


def test_a_fresh_token_is_kept_and_one_near_expiry_is_renewed(key_file, tmp_path):
    token = tmp_path / "smf-owner.token"
    clock = Clock(T0)
    renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=clock)
    first = token.read_bytes()
    clock.now = T0 + 4 * DAY  # 3 days left: outside the 2-day renewal window
    assert not renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=clock)
    assert token.read_bytes() == first
    clock.now = T0 + 5.5 * DAY  # 1.5 days left: renewed
    assert renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=clock)
    assert token_expiry(token.read_bytes()) == pytest.approx(clock.now + 7 * DAY, abs=0.001)


def test_finding_smf_owner_token_valid_for_ten_years_is_replaced(key_file, tmp_path):
    # The token the old deploy sealed (10 years) is longer than the policy: the next deploy
    # replaces it with one valid for the configured 7 days.
    token = tmp_path / "smf-owner.token"
    token.write_bytes(seal_owner_token(key_file.read_bytes(), "co", 10 * 365 * DAY,
                                       clock=lambda: T0))
    assert renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=Clock(T0 + DAY))
    assert token_expiry(token.read_bytes()) <= T0 + DAY + 7 * DAY + 0.001


@pytest.mark.parametrize("case", ["other owner", "other key", "garbage"])
def test_a_token_that_does_not_verify_for_the_owner_is_replaced(key_file, tmp_path, case):
    token = tmp_path / "smf-owner.token"
    key = key_file.read_bytes() if case != "other key" else secrets.token_bytes(32)
    owner = "someone-else" if case == "other owner" else "co"
    token.write_bytes(b"junk" if case == "garbage"
                      else seal_owner_token(key, owner, 7 * DAY, clock=lambda: T0))
    assert renew_token_file(key_file, token, "co", 7 * DAY, 2 * DAY, clock=Clock(T0))
    assert SealedTokenVerifier(key_file.read_bytes(), clock=lambda: T0).verify(
        token.read_bytes()) == "co"


def test_a_renewal_window_not_shorter_than_the_lifetime_is_refused(key_file, tmp_path):
    with pytest.raises(ValueError):
        renew_token_file(key_file, tmp_path / "t", "co", DAY, DAY)
