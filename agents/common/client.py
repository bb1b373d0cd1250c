"""Client channels with mutual TLS, and reading the caller's certificate identity on the server.

Client side::

    with secure_channel("10.10.0.11:50051", ca, cert, key) as channel:
        stub = ras_pb2_grpc.RasServiceStub(channel)

Server side (inside a servicer method)::

    caller = peer_identity(context)            # certificate CN, e.g. "smf.ctl01"
    require_peer(context, {"controller"})      # aborts with PERMISSION_DENIED otherwise

Who may call which RPC of an agent is not decided here but by the agent's policy table,
enforced once per call by agents.common.authz (registered with ``AgentServer.add(policy=...)``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

import grpc
from cryptography import x509

from agents.common.config import TLSConfig, is_loopback_host
from agents.common.errors import AgentStartError, NoPeerIdentity
from agents.common.tls import PemSource, TLSMaterial, channel_credentials


def secure_channel(
    target: str,
    ca: PemSource,
    cert: PemSource,
    key: PemSource,
    server_name: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """An mTLS channel to ``target`` (``host:port``) presenting ``cert``/``key``.

    ``server_name`` overrides the name checked against the server certificate's SANs
    (use it when dialling an IP the certificate lists only by DNS name).
    """
    material = TLSMaterial.load(ca, cert, key)
    opts = list(options)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, channel_credentials(material), options=opts)


def secure_channel_from_config(
    tls: TLSConfig,
    target: str,
    server_name: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """An mTLS channel using an agent's own TLS config (agents calling other agents)."""
    return secure_channel(target, tls.ca_cert, tls.cert, tls.key, server_name, options)


def plaintext_loopback_channel(target: str) -> grpc.Channel:
    """A plaintext channel, allowed only to loopback targets (agents in insecure_plaintext mode)."""
    host = target.rsplit(":", 1)[0].strip("[]")
    if not is_loopback_host(host):
        raise AgentStartError(f"refusing a plaintext channel to non-loopback target {target}")
    return grpc.insecure_channel(target)


def _auth_context(context: grpc.ServicerContext) -> Mapping[str, Sequence[bytes]]:
    # types-grpcio declares auth_context() as Mapping[str, bytes]; grpc documents and returns
    # "a map of strings to an iterable of bytes for each auth property"
    return cast("Mapping[str, Sequence[bytes]]", context.auth_context())


def _auth_values(context: grpc.ServicerContext, key: str) -> list[str]:
    values = _auth_context(context).get(key) or []
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def peer_identity(context: grpc.ServicerContext) -> str:
    """The verified client certificate's subject CN (or its first SAN when there is no CN).

    Raises NoPeerIdentity when the peer did not present a verified certificate.
    """
    if _auth_values(context, "transport_security_type") != ["ssl"]:
        raise NoPeerIdentity("the peer is not authenticated by TLS")
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = _auth_values(context, key)
        if values:
            return values[0]
    raise NoPeerIdentity("the peer presented no certificate identity")


def peer_sans(context: grpc.ServicerContext) -> list[str]:
    """Subject alternative names (DNS names and IPs) of the verified client certificate."""
    return _auth_values(context, "x509_subject_alternative_name")


def peer_certificate(context: grpc.ServicerContext) -> x509.Certificate | None:
    """The verified client certificate (e.g. to check signatures with its public key)."""
    pem = _auth_context(context).get("x509_pem_cert")
    if not pem:
        return None
    return x509.load_pem_x509_certificate(pem[0])


def require_peer(context: grpc.ServicerContext, allowed: Collection[str]) -> str:
    """Return the caller's identity, or abort the RPC unless it is one of ``allowed``.

    Aborts with UNAUTHENTICATED when there is no certificate identity and with
    PERMISSION_DENIED when the identity is not allowed. ``context.abort`` raises.
    """
    try:
        identity = peer_identity(context)
    except NoPeerIdentity as err:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
        raise  # unreachable: abort raises
    if identity not in allowed:
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"caller {identity!r} may not call this method"
        )
    return identity
