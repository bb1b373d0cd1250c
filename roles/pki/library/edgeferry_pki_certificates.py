#!/usr/bin/python
"""Ansible module: every mTLS certificate of one host, issued, renewed or kept in one run.

The pki role used to loop a task file per certificate (a stat, a read of the validity, a key,
a signing request and a signature: about seven module runs on the controller per certificate,
a minute per deploy on a four-host lab). This module does the same decisions for all of a
host's certificates in one process, with the same `cryptography` library community.crypto uses.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeferry_pki_certificates
short_description: Issue, renew or keep a host's certificates signed by the lab CA
description:
  - For each certificate, in I(directory), C(<name>.key) (EC P-256, mode 0600) and C(<name>.crt)
    (mode 0644) signed by the lab CA with ECDSA-SHA256.
  - A certificate is issued again, with a new serial, when it is missing, unreadable, not
    signed by the CA, not for its key, for another subject, other subject alternative names or
    other usages, when it expires within I(renew_before), when it is still valid beyond
    I(max_valid_for), or when its serial is in I(revoked_serials).
  - A revoked certificate's key is replaced as well (the key may be what was compromised).
    A key that is not an unencrypted EC P-256 key is replaced.
  - Supports check mode.
options:
  directory:
    description: Controller folder of the certificates (created with mode 0700).
    type: path
    required: true
  ca_certificate:
    description: The CA certificate (PEM).
    type: path
    required: true
  ca_private_key:
    description: The CA key (PEM, unencrypted).
    type: path
    required: true
  certificates:
    description: The certificates.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File name stem and organizational unit (the role).
        type: str
        required: true
      common_name:
        description: Subject CN.
        type: str
        required: true
      subject_alt_names:
        description: C(DNS:name) and C(IP:address) entries, in order.
        type: list
        elements: str
        required: true
  organization:
    description: Subject O.
    type: str
    default: edgeferry
  valid_for:
    description: Validity of a new certificate, relative (C(+30d); w, d, h, m, s).
    type: str
    required: true
  renew_before:
    description: Issue again when the certificate expires within this (C(+10d)).
    type: str
    required: true
  max_valid_for:
    description: Issue again when the certificate is still valid beyond this (C(+31d)).
    type: str
    required: true
  revoked_serials:
    description: Serial numbers of revoked certificates.
    type: list
    elements: int
    default: []
"""

RETURN = r"""
certificates:
  description: Per certificate name, what was done (kept, issued, renewed, rekeyed) and why.
  type: dict
  returned: always
"""

import datetime as dt  # noqa: E402
import ipaddress  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # reported by the module as a failure
    HAS_CRYPTOGRAPHY = False

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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "ca_certificate": {"type": "path", "required": True},
            "ca_private_key": {"type": "path", "required": True, "no_log": False},
            "certificates": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "common_name": {"type": "str", "required": True},
                "subject_alt_names": {"type": "list", "elements": "str", "required": True},
            }},
            "organization": {"type": "str", "default": "edgeferry"},
            "valid_for": {"type": "str", "required": True},
            "renew_before": {"type": "str", "required": True},
            "max_valid_for": {"type": "str", "required": True},
            "revoked_serials": {"type": "list", "elements": "int", "default": []},
        },
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg="the Python package 'cryptography' is needed on the controller")
    try:
        changed, report = run(module.params, module.check_mode)
    except (ValueError, OSError) as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=changed, certificates=report)


if __name__ == "__main__":
    main()
