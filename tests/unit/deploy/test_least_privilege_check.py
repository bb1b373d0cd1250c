"""The edgeferry_verify role's least-privilege check (roles/edgeferry_verify/files), on fakes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/edgeferry_verify/files/least_privilege.py"
_spec = importlib.util.spec_from_file_location("least_privilege", SCRIPT)
assert _spec and _spec.loader
lp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lp)

MANIFEST = {
    "agents": [
        {"name": "smf", "user": "ef-smf", "unit": "edgeferry-smf.service",
         "key": "/etc/edgeferry/pki/smf.key"},
        {"name": "audit", "user": "ef-audit", "unit": "edgeferry-audit.service",
         "key": "/etc/edgeferry/pki/audit.key"},
    ],
    "secrets": {"/etc/edgeferry/smf-owner.token": "smf", "/etc/edgeferry/audit-owner.key": "audit",
                "/etc/edgeferry/registry-password": "node"},  # node not on this host
}


def test_every_user_is_asked_about_every_owned_file():
    matrix = lp.read_matrix(MANIFEST)
    files = {p for _, p, _ in matrix}
    assert files == {"/etc/edgeferry/pki/smf.key", "/etc/edgeferry/pki/audit.key",
                     "/etc/edgeferry/smf-owner.token", "/etc/edgeferry/audit-owner.key"}
    assert len(matrix) == 2 * 4
    assert ("ef-audit", "/etc/edgeferry/smf-owner.token", False) in matrix
    assert ("ef-smf", "/etc/edgeferry/smf-owner.token", True) in matrix


def test_finding_one_user_reads_every_key_is_reported():
    # the former layout: one user, so every agent process reads every key
    assert len(lp.read_problems(MANIFEST, lambda user, path: True)) == 4
    assert "ef-audit can read /etc/edgeferry/pki/smf.key, which is not its own" in \
        lp.read_problems(MANIFEST, lambda user, path: True)


def test_own_files_only_is_clean_and_an_unreadable_own_key_is_reported():
    own = {p: u for p, u in lp.owned_files(MANIFEST)}
    assert lp.read_problems(MANIFEST, lambda user, path: own[path] == user) == []
    problems = lp.read_problems(MANIFEST, lambda user, path: False)
    assert problems == ["ef-smf cannot read its own /etc/edgeferry/pki/smf.key",
                        "ef-audit cannot read its own /etc/edgeferry/pki/audit.key",
                        "ef-audit cannot read its own /etc/edgeferry/audit-owner.key",
                        "ef-smf cannot read its own /etc/edgeferry/smf-owner.token"]


def test_ownership_and_mode_are_checked():
    own = dict(lp.owned_files(MANIFEST))
    assert lp.ownership_problems(MANIFEST, lambda p: (own[p], 0o600)) == []
    found = lp.ownership_problems(MANIFEST, lambda p: None if p.endswith("token")
                                  else ("edgeferry", 0o640))
    assert "/etc/edgeferry/smf-owner.token is missing" in found
    assert "/etc/edgeferry/pki/smf.key is owned by edgeferry, not ef-smf" in found
    assert "/etc/edgeferry/pki/smf.key has mode 0640, not 0600" in found


def test_units_must_be_configured_for_and_run_as_their_own_user():
    assert lp.unit_problems(MANIFEST, lambda unit: ("ef-" + unit[10:-8],) * 2) == []
    shared = lp.unit_problems(MANIFEST, lambda unit: ("edgeferry", "edgeferry"))
    assert len(shared) == 4 and "edgeferry-smf.service runs as 'edgeferry', not 'ef-smf'" in shared


@pytest.mark.parametrize(("days", "bad"), [(30, False), (30.001, False), (31, True), (825, True)])
def test_certificate_lifetimes_are_bounded(days, bad):
    assert bool(lp.lifetime_problems([("a.crt", days * 86400)], 30)) is bad
