"""TLS for the NMS transport. Standard library only (runs inside the NMS image as ``nms.tls``).

Every NMS connection is TLS 1.3 (nothing older is offered or accepted). The server presents a
lab-CA certificate whose subject alternative name is the service's *stable* DNS name
`SERVER_NAME`, not a host address: the same certificate is valid wherever the NMS container
runs, so a migrated NMS keeps working on the destination, and the client checks that name
whatever address the SMF located the service at. The client trusts the lab CA only (no system
roots) and requires a valid chain, the serverAuth usage and the name.

The clients are applications that found the NMS through an SSP session (and fuxfs mounts of
users), not lab principals: they hold the NMS session key, not a lab certificate. So TLS
authenticates the server and encrypts; the client is authenticated inside the tunnel by the
`auth` handshake over the session key, which also keeps its per-frame MAC (see `auth`).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

#: The DNS name in the NMS certificate and the name every client verifies.
SERVER_NAME = "nms.edgeferry.internal"


def check_private(path: Path) -> None:
    """Refuse a key file that anyone but its owner may read (mode 0600/0400 or stricter)."""
    mode = path.stat().st_mode & 0o077
    if mode:
        raise PermissionError(f"{path} is readable by others (mode {oct(mode)}); chmod 600")


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS 1.3-only server context presenting ``cert_file`` (its key must be private)."""
    check_private(key_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A TLS 1.3-only client context that trusts ``ca_file`` (the lab CA) and nothing else,
    verifies the chain and the server name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


@dataclass(frozen=True)
class ClientTls:
    """How a client opens TLS to the NMS: the lab-CA context and the name it verifies."""

    context: ssl.SSLContext
    server_name: str = SERVER_NAME

    @classmethod
    def from_ca_file(cls, ca_file: Path, server_name: str = SERVER_NAME) -> ClientTls:
        """Trust the lab CA certificate in ``ca_file``; verify ``server_name``."""
        return cls(client_context(ca_file), server_name)

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """Run the TLS handshake on a connected socket (under the socket's timeout)."""
        return self.context.wrap_socket(sock, server_hostname=self.server_name)
