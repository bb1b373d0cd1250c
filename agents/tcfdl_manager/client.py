"""Client of the TCFDL service manager (proxies, masters, workers, offloading clients).

    manager = ManagerClient(channel)
    key = manager.hop_key("tcfdl-proxy.a")
    signed = manager.attestation("tcfdl-proxy.a")   # verify with attestation.verify
"""

from __future__ import annotations

from typing import Any

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.status import call
from agents.security.tcfdl.attestation import SignedRecord
from agents.security.tcfdl.pre import PartyKey

DEFAULT_TIMEOUT_S = 10.0


def _signed(reply: pb.Attestation) -> SignedRecord:
    return SignedRecord(reply.record, reply.signature, reply.certificate)


class ManagerClient:
    """Typed calls to the TCFDL manager (refusals raise RemoteProtocolError or grpc.RpcError)."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.TcfdlManagerServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"tcfdl-manager.{name}",
                    timeout=self.timeout)

    def admit(self, cn: str, cluster: str) -> None:
        """Admit `cn` into `cluster` (the controller)."""
        self._call("AdmitNode", pb.AdmitNodeRequest(cn=cn, cluster=cluster))

    def attest(self, measurement: bytes) -> SignedRecord:
        """A proxy's own attestation."""
        return _signed(self._call("Attest", pb.AttestRequest(measurement=measurement)))

    def attestation(self, proxy: str) -> SignedRecord:
        """A proxy's current signed record."""
        return _signed(self._call("GetAttestation", pb.GetAttestationRequest(proxy=proxy)))

    def enroll(self, scheme: str, function: str, *, processor: bool) -> tuple[PartyKey, bytes]:
        """The caller's EAE key pair for `function` and the function's public part."""
        r = self._call("EnrollInstance", pb.EnrollInstanceRequest(
            scheme=scheme, function=function, processor=processor))
        return PartyKey(scheme, r.party_secret, r.party_public), bytes(r.function_public)

    def rekey(self, scheme: str, function: str, instance: str, stage: str) -> bytes:
        """A re-encryption key's material (empty: the scheme has none for that stage)."""
        r = self._call("GetReKey", pb.GetReKeyRequest(scheme=scheme, function=function,
                                                      instance=instance, stage=stage))
        return bytes(r.material)

    def hop_key(self, peer: str) -> bytes:
        """The AES-128 key of the hop between the caller and `peer`."""
        return bytes(self._call("GetHopKey", pb.GetHopKeyRequest(peer=peer)).key)

    def register_function(self, function: str) -> None:
        """A master registers a function of its cluster."""
        self._call("RegisterFunction", pb.RegisterFunctionRequest(function=function))

    def lookup(self, function: str) -> tuple[str, str]:
        """(cluster, proxy CN) serving `function`; LookupError when no cluster registered it."""
        try:
            r = self._call("LookupFunction", pb.LookupFunctionRequest(function=function))
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise LookupError(err.details()) from None
            raise
        return r.cluster, r.proxy
