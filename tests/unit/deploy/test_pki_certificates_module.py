"""The pki role's script that issues, renews or keeps all of a host's certificates in one run
(roles/pki/files/pki_certificates.py): as a command with its parameters on stdin, as the role
runs it, and its decisions one by one; every certificate checked with ``openssl verify`` against
the lab CA and read back with `cryptography`, not with the script's own code. The role's task
itself runs in tests/unit/deploy/test_ui_deploy.py and in every lab deploy."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeferry.pki import LabCA

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "roles" / "pki" / "files" / "pki_certificates.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pki_certificates", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MOD = load_module()


def certs(*names: str, host: str = "edge1", extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"name": n, "common_name": f"{n}.{host}",
             "subject_alt_names": [f"DNS:{host}", "IP:10.0.0.5", f"DNS:{n}", *extra]}
            for n in names]


@pytest.fixture()
def ca(tmp_path: Path) -> LabCA:
    return LabCA.create(tmp_path / "ca", "test CA")


def params(ca: LabCA, out: Path, items: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {"directory": str(out), "ca_certificate": str(ca.cert_path),
            "ca_private_key": str(ca.key_path), "certificates": items,
            "organization": "edgeferry", "valid_for": "+30d", "renew_before": "+10d",
            "max_valid_for": "+31d", "revoked_serials": [], **over}


def read(out: Path, name: str) -> tuple[x509.Certificate, bytes]:
    cert = x509.load_pem_x509_certificate((out / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((out / f"{name}.key").read_bytes(), None)
    return cert, key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def openssl_verifies(ca: LabCA, cert: Path) -> bool:
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert_path), str(cert)],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


def script(args: list[str], params: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], input=json.dumps(params),
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_script_issues_each_certificate_once_and_then_changes_nothing(
        ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "hosts" / "edge1"
    given = params(ca, out, certs("host", "node", "ras"))
    del given["organization"]  # the default, as the role leaves it

    def play() -> dict[str, Any]:
        proc = script([], given)
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    first = play()
    assert first["changed"] is True
    assert {n: c["action"] for n, c in first["certificates"].items()} == {
        "host": "issued", "node": "issued", "ras": "issued"}
    assert out.stat().st_mode & 0o777 == 0o700
    for name in ("host", "node", "ras"):
        assert openssl_verifies(ca, out / f"{name}.crt"), name
        assert (out / f"{name}.key").stat().st_mode & 0o777 == 0o600
        assert (out / f"{name}.crt").stat().st_mode & 0o777 == 0o644
        cert, spki = read(out, name)
        assert cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
            f"{name}.edge1"
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value \
            == name
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["edge1", name]
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert dt.timedelta(days=29) < life <= dt.timedelta(days=30)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = play()
    assert second["changed"] is False
    assert {c["action"] for c in second["certificates"].values()} == {"kept"}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_certificate_expiring_within_the_renewal_time_is_renewed_on_its_key(
        ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "h"
    MOD.run(params(ca, out, certs("node"), valid_for="+5d"), False)
    old, old_key = read(out, "node")
    changed, report = MOD.run(params(ca, out, certs("node")), False)
    new, new_key = read(out, "node")
    assert changed and report["node"]["action"] == "renewed"
    assert new.serial_number != old.serial_number and new_key == old_key
    assert new.not_valid_after_utc - old.not_valid_after_utc > dt.timedelta(days=24)
    assert openssl_verifies(ca, out / "node.crt")


def test_a_certificate_issued_for_too_long_is_issued_again(ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "h"
    MOD.run(params(ca, out, certs("node"), valid_for="+60d"), False)
    old, _ = read(out, "node")
    changed, report = MOD.run(params(ca, out, certs("node")), False)
    new, _ = read(out, "node")
    assert changed and report["node"]["action"] == "renewed"
    assert new.not_valid_after_utc < old.not_valid_after_utc - dt.timedelta(days=25)


def test_a_revoked_certificate_gets_a_new_key_and_serial(ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "h"
    MOD.run(params(ca, out, certs("node", "ras")), False)
    node, node_key = read(out, "node")
    ras, ras_key = read(out, "ras")
    changed, report = MOD.run(params(ca, out, certs("node", "ras"),
                                     revoked_serials=[node.serial_number]), False)
    new_node, new_node_key = read(out, "node")
    assert changed and report["node"]["action"] == "rekeyed"
    assert report["ras"]["action"] == "kept"
    assert new_node.serial_number != node.serial_number and new_node_key != node_key
    assert read(out, "ras") == (ras, ras_key)


def test_new_names_or_another_ca_issue_again_and_wrong_modes_are_mended(
        ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "h"
    MOD.run(params(ca, out, certs("node")), False)
    changed, report = MOD.run(params(ca, out, certs("node", extra=("DNS:edge1.lab",))), False)
    assert changed and report["node"]["reason"] == "other subject alternative names"
    sans = read(out, "node")[0].extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "edge1.lab" in sans.get_values_for_type(x509.DNSName)
    other = LabCA.create(tmp_path / "other", "another CA")
    changed, report = MOD.run(params(other, out, certs("node", extra=("DNS:edge1.lab",))), False)
    assert changed and report["node"]["reason"] == "not signed by the lab CA"
    assert openssl_verifies(other, out / "node.crt") and not openssl_verifies(ca, out /
                                                                                "node.crt")
    (out / "node.key").chmod(0o644)
    changed, report = MOD.run(params(other, out, certs("node", extra=("DNS:edge1.lab",))), False)
    assert changed and report["node"]["action"] == "kept"
    assert (out / "node.key").stat().st_mode & 0o777 == 0o600


def test_check_mode_reports_the_change_and_writes_nothing(ca: LabCA, tmp_path: Path) -> None:
    out = tmp_path / "h"
    MOD.run(params(ca, out, certs("node")), False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = script(["--check"], params(ca, out, certs("node", "ras")))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["changed"] is True
    assert report["certificates"]["ras"]["action"] == "issued"
    assert report["certificates"]["node"]["action"] == "kept"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a check run before the CA exists (deploy --check on a new controller) says what it
    # would issue; a real run there is an error
    missing = params(ca, tmp_path / "new", certs("node"), ca_certificate=str(tmp_path / "no.crt"),
                     ca_private_key=str(tmp_path / "no.key"))
    assert MOD.run(missing, True) == (True, {"node": {"action": "issued",
                                                      "reason": "no lab CA yet"}})
    with pytest.raises(ValueError, match="no usable lab CA"):
        MOD.run(missing, False)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("field,value,message", [
    ("valid_for", "30 days", "not a relative time"),
    ("certificates", certs("../node"), "letters, digits"),
    ("certificates", [{"name": "node", "common_name": "node.e",
                       "subject_alt_names": ["URI:x"]}], "DNS:<name> or IP:<address>"),
])
def test_bad_input_is_refused_before_anything_is_written(
        ca: LabCA, tmp_path: Path, field: str, value: Any, message: str) -> None:
    out = tmp_path / "h"
    out.mkdir(mode=0o700)
    with pytest.raises(ValueError, match=message):
        MOD.run(params(ca, out, certs("node") if field != "certificates" else value,
                       **({field: value} if field != "certificates" else {})), False)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("broken,message", [
    ("{not json", "not JSON"),
    (json.dumps({"directory": "/tmp/x"}), "'ca_certificate' must be a str"),
    (json.dumps({"directory": "d", "ca_certificate": "c", "ca_private_key": "k",
                 "certificates": [{"name": "node"}], "valid_for": "+1d",
                 "renew_before": "+1d", "max_valid_for": "+2d"}), "give name, common_name"),
])
def test_the_command_refuses_bad_parameters_with_status_2(broken: str, message: str) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], input=broken, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""
