"""`edgeferry pki revoke`: the controller records the serial and drops the key and certificate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from edgeferry.cli.main import cli
from edgeferry.deploy.revocation import certificate_paths, load_revocations, pki_dir, revoke
from edgeferry.errors import ConfigError
from edgeferry.pki import LabCA


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / ".edgeferry" / "pki" / "lab1"
    ca = LabCA.create(folder / "ca")
    ca.issue("node", folder / "hosts" / "edge1", dns_names=["node.edge1"], valid_days=30)
    ca.issue("host", folder / "hosts" / "edge1", dns_names=["edge1"], valid_days=30)
    ca.issue("client", folder / "controller", dns_names=["controller"], valid_days=30)
    return folder


def test_names_map_to_the_controller_files(tmp_path):
    assert certificate_paths(tmp_path, "node.edge1") == (
        tmp_path / "hosts/edge1/node.crt", tmp_path / "hosts/edge1/node.key")
    assert certificate_paths(tmp_path, "host.edge-2.lab") == (
        tmp_path / "hosts/edge-2.lab/host.crt", tmp_path / "hosts/edge-2.lab/host.key")
    assert certificate_paths(tmp_path, "controller")[0] == tmp_path / "controller/client.crt"
    for bad in ("edge1", "../x.y", "node./etc", "Node.edge1", ""):
        with pytest.raises(ConfigError):
            certificate_paths(tmp_path, bad)


def test_pki_dir_is_the_roles_edgeferry_pki_dir(tmp_path):
    (tmp_path / "inventory" / "lab1").mkdir(parents=True)
    assert pki_dir(tmp_path / "inventory" / "lab1", root=tmp_path) == \
        tmp_path / ".edgeferry" / "pki" / "lab1"


def test_revoke_records_the_serial_and_removes_key_and_certificate(pki):
    crt, key = certificate_paths(pki, "node.edge1")
    serial = x509.load_pem_x509_certificate(crt.read_bytes()).serial_number
    now = dt.datetime(2026, 11, 26, 4, 30, tzinfo=dt.UTC)
    entry = revoke(pki, "node.edge1", "key_compromise", now=now)
    assert entry.serial_number == serial
    assert entry.revocation_date == "20261126043000Z"
    assert not crt.exists() and not key.exists()
    assert (pki / "revoked.json").stat().st_mode & 0o777 == 0o600
    doc = json.loads((pki / "revoked.json").read_text())
    assert doc["revoked"][0]["serial_number"] == serial
    assert doc["revoked"][0]["reason"] == "key_compromise"
    # the host certificate of the same host is untouched
    assert certificate_paths(pki, "host.edge1")[0].exists()
    assert load_revocations(pki) == [entry]


def test_revocations_accumulate_and_expired_ones_are_dropped(pki):
    first = revoke(pki, "node.edge1")
    second = revoke(pki, "controller")
    assert [r.name for r in load_revocations(pki)] == ["node.edge1", "controller"]
    assert first.serial_number != second.serial_number
    # 31 days later both certificates have expired: revoking a new one drops them
    LabCA.load(pki / "ca").issue("host", pki / "hosts" / "edge2", dns_names=["edge2"],
                                 valid_days=60)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    revoke(pki, "host.edge2", now=later)
    assert [r.name for r in load_revocations(pki)] == ["host.edge2"]


def test_revoking_a_missing_certificate_or_with_a_bad_reason_fails(pki):
    with pytest.raises(ConfigError, match="no certificate"):
        revoke(pki, "smf.edge9")
    with pytest.raises(ConfigError, match="reason"):
        revoke(pki, "node.edge1", "because")
    assert load_revocations(pki) == []


def test_a_corrupt_revocation_file_is_reported(pki):
    (pki / "revoked.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not a revocation list"):
        load_revocations(pki)


def test_cli_revoke_tells_the_user_to_redeploy(pki, tmp_path, monkeypatch):
    inventory = tmp_path / "inventory" / "lab1"
    inventory.mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all: {}\n")
    monkeypatch.setattr("edgeferry.cli.pki.pki_dir", lambda inv: pki)
    result = CliRunner().invoke(cli, ["pki", "revoke", "node.edge1", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    assert "edgeferry deploy" in result.output
    listed = CliRunner().invoke(cli, ["pki", "list", "-i", str(inventory)])
    assert "node.edge1" in listed.output
