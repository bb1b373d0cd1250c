#!/usr/bin/env python3
"""Every mTLS certificate of one host, issued, renewed or kept in one run (the pki role runs it
on the controller with Ansible's own Python, as roles/edgeferry_agent/files/edgeferry_package.py
is run: a role in a collection cannot carry a module of its own).

The role used to loop a task file per certificate (a stat, a read of the validity, a key, a
signing request and a signature: about seven module runs on the controller per certificate, a
minute per deploy on a four-host lab). This does the same decisions for all of a host's
certificates in one process, with the `cryptography` library community.crypto uses.

    python3 pki_certificates.py [--check] < params.json

params: ``directory`` (created 0700), ``ca_certificate``, ``ca_private_key``, ``certificates``
(a list of ``name``, ``common_name``, ``subject_alt_names``: ``DNS:<name>``/``IP:<address>``),
``organization`` (default edgeferry), ``valid_for``, ``renew_before``, ``max_valid_for``
(relative: ``+30d``; w, d, h, m, s) and ``revoked_serials``. In each certificate's
``<name>.key`` (EC P-256, 0600) and ``<name>.crt`` (0644, ECDSA-SHA256 by the lab CA). A
certificate is issued again, with a new serial, when it is missing, unreadable, not signed by
the CA, not for its key, for another subject, other names or usages, when it expires within
``renew_before``, is still valid beyond ``max_valid_for``, or its serial is revoked; a revoked
certificate's key is replaced as well (the key may be what was compromised), and so is a key
that is not an unencrypted EC P-256 key. ``--check`` decides without writing.

Prints one JSON object: ``changed`` and, per certificate, ``action`` (kept, issued, renewed,
rekeyed) and ``reason``. Bad input: exit status 2 and the reason on stderr, nothing written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import re
import sys
import tempfile
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_RELATIVE = re.compile(r"^\+(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
KEY_MODE, CERT_MODE, DIR_MODE = 0o600, 0o644, 0o700


def relative(text: str) -> dt.timedelta:
    """``+30d``, ``+1w2d``, ``+12h``: a time span ahead (community.crypto's relative form)."""
    match = _RELATIVE.match(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a relative time such as +30d")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def general_names(entries: list[str]) -> list[Any]:
    out: list[Any] = []
    for entry in entries:
        kind, _, value = entry.partition(":")
        if kind == "DNS" and value:
            out.append(x509.DNSName(value))
        elif kind == "IP" and value:
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        else:
            raise ValueError(f"subject alternative name {entry!r}: use DNS:<name> or IP:<address>")
    return out


def subject(organization: str, unit: str, common_name: str) -> Any:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def key_usage() -> Any:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=True,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


def usages() -> Any:
    return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                  ExtendedKeyUsageOID.CLIENT_AUTH])


def read_key(path: str) -> Any:
    """The unencrypted EC P-256 key at ``path``, or None (missing, unreadable or another kind)."""
    try:
        with open(path, "rb") as fh:
            key = serialization.load_pem_private_key(fh.read(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


def read_cert(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            return x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError):
        return None


def extension(cert: Any, kind: Any) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def reissue_reason(cert: Any, key: Any, ca: Any, want_subject: Any, want_sans: list[Any],
                   now: dt.datetime, renew_before: dt.timedelta, max_valid_for: dt.timedelta,
                   revoked: set[int]) -> str:
    """Why the certificate must be issued again ("" when it is kept)."""
    if cert is None:
        return "missing"
    if cert.serial_number in revoked:
        return "revoked"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the lab CA"
    if key is None or (cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)):
        return "not for its key"
    if cert.subject != want_subject:
        return f"subject {cert.subject.rfc4514_string()}"
    sans = extension(cert, x509.SubjectAlternativeName)
    if sans is None or list(sans) != want_sans:
        return "other subject alternative names"
    eku = extension(cert, x509.ExtendedKeyUsage)
    if eku is None or list(eku) != list(usages()) or extension(cert, x509.KeyUsage) != key_usage():
        return "other usages"
    basic = extension(cert, x509.BasicConstraints)
    if basic is None or basic.ca:
        return "not an end-entity certificate"
    if cert.not_valid_after_utc <= now + renew_before:
        return "expires within the renewal time"
    if cert.not_valid_after_utc > now + max_valid_for:
        return "issued for longer than allowed"
    return ""


def write_atomic(path: str, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".ef-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sign(key: Any, ca_cert: Any, ca_key: Any, want_subject: Any, sans: list[Any],
         now: dt.datetime, valid_for: dt.timedelta) -> Any:
    return (x509.CertificateBuilder()
            .subject_name(want_subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(min(now + valid_for, ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(key_usage(), critical=False)
            .add_extension(usages(), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def fix_mode(path: str, mode: int, check: bool) -> bool:
    if os.stat(path).st_mode & 0o777 == mode:
        return False
    if not check:
        os.chmod(path, mode)
    return True


def run(params: dict[str, Any], check: bool) -> tuple[bool, dict[str, Any]]:
    directory = params["directory"]
    valid_for, renew_before, max_valid_for = (relative(params[k]) for k in
                                              ("valid_for", "renew_before", "max_valid_for"))
    ca_cert = read_cert(params["ca_certificate"])
    ca_key = read_key(params["ca_private_key"])
    if check and ca_cert is None and ca_key is None:  # a check run before the CA is created
        return True, {item["name"]: {"action": "issued", "reason": "no lab CA yet"}
                      for item in params["certificates"]}
    if ca_cert is None or ca_key is None:
        raise ValueError(f"no usable lab CA at {params['ca_certificate']} and "
                         f"{params['ca_private_key']}")
    revoked = set(params["revoked_serials"] or [])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    changed, report = False, {}
    wanted = []  # every input checked before anything is written
    for item in params["certificates"]:
        name = item["name"]
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", name):
            raise ValueError(f"certificate name {name!r}: letters, digits, '.', '_', '-' only")
        wanted.append((name, subject(params["organization"], name, item["common_name"]),
                       general_names(list(dict.fromkeys(item["subject_alt_names"])))))
    if not os.path.isdir(directory):
        changed = True
        if not check:
            os.makedirs(directory, mode=DIR_MODE)
    else:
        changed = fix_mode(directory, DIR_MODE, check)
    for name, want_subject, sans in wanted:
        key_path = os.path.join(directory, f"{name}.key")
        cert_path = os.path.join(directory, f"{name}.crt")
        key, cert = read_key(key_path), read_cert(cert_path)
        reason = reissue_reason(cert, key, ca_cert, want_subject, sans, now, renew_before,
                                max_valid_for, revoked)
        action = "kept"
        if key is None or reason == "revoked":
            action = "issued" if cert is None and key is None else "rekeyed"
            key = ec.generate_private_key(ec.SECP256R1())
            if not check:
                write_atomic(key_path, key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()), KEY_MODE)
        else:
            changed = fix_mode(key_path, KEY_MODE, check) or changed
        if reason:
            if action == "kept":
                action = "issued" if cert is None else "renewed"
            new = sign(key, ca_cert, ca_key, want_subject, sans, now, valid_for)
            if not check:
                write_atomic(cert_path, new.public_bytes(serialization.Encoding.PEM), CERT_MODE)
        else:
            changed = fix_mode(cert_path, CERT_MODE, check) or changed
        changed = changed or action != "kept"
        report[name] = {"action": action, "reason": reason}
    return changed, report


REQUIRED = {"directory": str, "ca_certificate": str, "ca_private_key": str,
            "certificates": list, "valid_for": str, "renew_before": str,
            "max_valid_for": str}


def parse(text: str) -> dict[str, Any]:
    """The parameters, checked for presence and type (ValueError otherwise)."""
    try:
        params = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"parameters are not JSON: {err}") from None
    if not isinstance(params, dict):
        raise ValueError("parameters must be a JSON object")
    for key, kind in REQUIRED.items():
        if not isinstance(params.get(key), kind):
            raise ValueError(f"parameter {key!r} must be a {kind.__name__}")
    for item in params["certificates"]:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and isinstance(item.get("common_name"), str)
                and isinstance(item.get("subject_alt_names"), list)
                and all(isinstance(n, str) for n in item["subject_alt_names"])):
            raise ValueError(f"certificate {item!r}: give name, common_name and a list of "
                             "subject_alt_names")
    revoked = params.setdefault("revoked_serials", [])
    if not (isinstance(revoked, list) and all(isinstance(n, int) for n in revoked)):
        raise ValueError("revoked_serials must be a list of integers")
    params.setdefault("organization", "edgeferry")
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="decide, write nothing")
    args = parser.parse_args(argv)
    try:
        changed, report = run(parse(sys.stdin.read()), args.check)
    except (ValueError, OSError) as err:
        print(f"pki_certificates: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"changed": changed, "certificates": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
