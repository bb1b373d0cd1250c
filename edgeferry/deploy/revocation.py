"""Certificate revocation on the controller (`edgeferry pki revoke NAME`).

Revoking records the certificate's serial number in ``.edgeferry/pki/<inventory>/revoked.json``
(mode 0600) and deletes the certificate and its key from the controller, so the next deploy
issues a new key and certificate. The pki role turns the file (and the inventory's
``pki_revoked_certificates``) into the lab CA's CRL, installs it as /etc/edgeferry/pki/crl.pem on
every host, and the agents refuse the listed certificates (``tls.crl``).

A certificate is named as its common name: ``<instance>.<host>`` for an agent instance
(``node.edge1``), ``host.<host>`` for a host's own certificate, ``controller`` for the
controller's client certificate. Entries are dropped from the file once the certificate they
revoke has expired anyway, so the CRL stays bounded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509

from edgeferry.deploy.runner import inventory_name
from edgeferry.errors import ConfigError
from edgeferry.workspace import workspace

REVOKED_FILE = "revoked.json"
# The reasons community.crypto.x509_crl accepts that make sense for a lab CA.
REASONS = ("unspecified", "key_compromise", "affiliation_changed", "superseded",
           "cessation_of_operation", "privilege_withdrawn")
_NAME_RE = re.compile(r"^(controller|[a-z][a-z0-9-]{0,31}\.[A-Za-z0-9][A-Za-z0-9.-]{0,62})$")
_ASN1_TIME = "%Y%m%d%H%M%SZ"


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate: its name, serial, when and why, and when it expires anyway."""

    name: str
    serial_number: int
    revocation_date: str  # ASN.1 GeneralizedTime, e.g. 20261126043000Z (x509_crl's format)
    reason: str
    not_after: str


def pki_dir(inventory: Path, root: Path | None = None) -> Path:
    """The controller folder of an inventory's CA and certificates (edgeferry_pki_dir), under
    `root` (default: the workspace)."""
    return (root or workspace()) / ".edgeferry" / "pki" / inventory_name(Path(inventory))


def certificate_paths(pki: Path, name: str) -> tuple[Path, Path]:
    """The controller's certificate and key files of the certificate called ``name``."""
    if not _NAME_RE.match(name):
        raise ConfigError(f"certificate name {name!r}: use <instance>.<host> (e.g. node.edge1), "
                          "host.<host> or controller")
    if name == "controller":
        return pki / "controller" / "client.crt", pki / "controller" / "client.key"
    instance, host = name.split(".", 1)
    folder = pki / "hosts" / host
    return folder / f"{instance}.crt", folder / f"{instance}.key"


def load_revocations(pki: Path) -> list[Revocation]:
    """The revocations recorded for an inventory (empty when none were)."""
    path = pki / REVOKED_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not a revocation list ({err}); fix or delete it") from None
    try:
        return [Revocation(**entry) for entry in doc["revoked"]]
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a revocation list ({err}); fix or delete it") from None


def revoke(pki: Path, name: str, reason: str = "unspecified",
           now: dt.datetime | None = None) -> Revocation:
    """Record the certificate ``name`` as revoked and delete its certificate and key from the
    controller (the next deploy issues new ones). Raises ConfigError when there is no such
    certificate or the reason is unknown."""
    if reason not in REASONS:
        raise ConfigError(f"reason {reason!r}: choose one of {', '.join(REASONS)}")
    crt, key = certificate_paths(pki, name)
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"no certificate {name!r} on the controller ({crt}); `edgeferry pki "
                          "list` shows the revoked ones, deploy issues missing ones") from None
    except ValueError:
        raise ConfigError(f"{crt} is not a PEM certificate") from None
    now = now or dt.datetime.now(dt.timezone.utc)
    entry = Revocation(name=name, serial_number=cert.serial_number,
                       revocation_date=now.strftime(_ASN1_TIME), reason=reason,
                       not_after=cert.not_valid_after_utc.strftime(_ASN1_TIME))
    kept = [r for r in load_revocations(pki)
            if _parse(r.not_after) > now and r.serial_number != entry.serial_number]
    _write_private(pki / REVOKED_FILE,
                   json.dumps({"revoked": [asdict(r) for r in [*kept, entry]]}, indent=2) + "\n")
    crt.unlink()
    key.unlink(missing_ok=True)
    return entry


def _parse(asn1_time: str) -> dt.datetime:
    return dt.datetime.strptime(asn1_time, _ASN1_TIME).replace(tzinfo=dt.timezone.utc)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
