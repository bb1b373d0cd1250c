"""Connecting to a cluster's NATS server with the lab CA (shared by master, workers, clients).

Only TLS: the server verifies the client certificate and maps its subject to a user
(agents.tcfdl_master.natsconf); the client verifies the server against the lab CA.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import nats
from nats.aio.client import Client

MAX_PENDING = 32 * 1024 * 1024


def tls_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A client TLS context trusting only the lab CA and presenting `cert`."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_cert))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def connect(url: str, ctx: ssl.SSLContext, *, name: str, server_name: str = "",
                  reconnect: bool = True, max_reconnect_attempts: int = 60) -> Client:
    """A NATS connection over TLS (`url` like ``tls://10.10.0.11:4222``); `server_name` is the
    name checked against the server certificate (default: the URL's host)."""
    if not url.startswith("tls://"):
        raise ValueError(f"NATS URL {url!r}: only tls:// is allowed")
    return await nats.connect(url, tls=ctx, tls_hostname=server_name or None, name=name,
                              allow_reconnect=reconnect, reconnect_time_wait=0.2,
                              max_reconnect_attempts=max_reconnect_attempts,
                              connect_timeout=3, pending_size=MAX_PENDING)
