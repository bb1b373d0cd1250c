"""NMS TLS material for tests: a certificate for the NMS name from a test lab CA, as the pki role
issues it (CN ``workload.nms``, SAN ``nms.edgeferry.internal``, serverAuth only)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from agents.workloads.nms.tls import SERVER_NAME, ClientTls, server_context
from edgeferry.pki import IssuedCert, LabCA


@dataclass(frozen=True)
class NmsTls:
    """The NMS certificate and the CA the clients trust."""

    issued: IssuedCert
    ca_cert: Path

    def server(self) -> ssl.SSLContext:
        return server_context(self.issued.cert_path, self.issued.key_path)

    def client(self, server_name: str = SERVER_NAME) -> ClientTls:
        return ClientTls.from_ca_file(self.ca_cert, server_name)


def issue_nms_cert(ca: LabCA, out_dir: Path) -> NmsTls:
    """Issue the NMS server certificate into ``out_dir`` (cached there across calls)."""
    issued = ca.issue("workload.nms", out_dir, dns_names=[SERVER_NAME], server=True,
                      client=False)
    return NmsTls(issued, ca.cert_path)
