"""gRPC side of the TCFDL service manager: protobuf <-> ManagerCore, refusals -> status."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2 as pb
from agents._proto.edgeferry.tcfdl.v1 import tcfdl_service_pb2_grpc as pb_grpc
from agents.common.client import peer_identity
from agents.common.errors import NoPeerIdentity
from agents.common.status import StatusTable, abort, mapped_errors
from agents.security.tcfdl.attestation import SignedRecord
from agents.tcfdl_manager.core import ManagerCore

SERVICE_NAME = "edgeferry.tcfdl.v1.TcfdlManagerService"
add_to_server = pb_grpc.add_TcfdlManagerServiceServicer_to_server
ERRORS: StatusTable = (
    (LookupError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
)
_CATCH = (LookupError, ValueError)
MAX_MEASUREMENT = 64


def _pb(signed: SignedRecord) -> pb.Attestation:
    return pb.Attestation(record=signed.record, signature=signed.signature,
                          certificate=signed.certificate)


class ManagerServicer(pb_grpc.TcfdlManagerServiceServicer):
    """TcfdlManagerService over a ManagerCore (who may call what: policy.py; the caller is
    its certificate CN, so the manager serves only over mTLS)."""

    def __init__(self, core: ManagerCore) -> None:
        self.core = core

    def _caller(self, context: grpc.ServicerContext) -> str:
        try:
            return peer_identity(context)
        except NoPeerIdentity:
            abort(context, grpc.StatusCode.UNAUTHENTICATED, "the TCFDL manager needs mTLS")

    def AdmitNode(self, request: pb.AdmitNodeRequest,
                  context: grpc.ServicerContext) -> pb.AdmitNodeResponse:
        with mapped_errors(context, _CATCH, ERRORS):
            self.core.admit(request.cn, request.cluster)
        return pb.AdmitNodeResponse()

    def Attest(self, request: pb.AttestRequest, context: grpc.ServicerContext) -> pb.Attestation:
        if len(request.measurement) > MAX_MEASUREMENT:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "measurement too long")
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            return _pb(self.core.attest(caller, request.measurement))

    def GetAttestation(self, request: pb.GetAttestationRequest,
                       context: grpc.ServicerContext) -> pb.Attestation:
        with mapped_errors(context, _CATCH, ERRORS):
            return _pb(self.core.attestation_of(request.proxy))

    def EnrollInstance(self, request: pb.EnrollInstanceRequest,
                       context: grpc.ServicerContext) -> pb.EnrollInstanceResponse:
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            e = self.core.enroll(caller, request.scheme, request.function, request.processor)
        return pb.EnrollInstanceResponse(party_secret=e.party.secret,
                                         party_public=e.party.public,
                                         function_public=e.function_public)

    def GetReKey(self, request: pb.GetReKeyRequest,
                 context: grpc.ServicerContext) -> pb.GetReKeyResponse:
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            rk = self.core.rekey(caller, request.scheme, request.function, request.instance,
                                 request.stage)
        return pb.GetReKeyResponse(material=b"" if rk is None else rk.material)

    def GetHopKey(self, request: pb.GetHopKeyRequest,
                  context: grpc.ServicerContext) -> pb.GetHopKeyResponse:
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            return pb.GetHopKeyResponse(key=self.core.hop_key(caller, request.peer))

    def RegisterFunction(self, request: pb.RegisterFunctionRequest,
                         context: grpc.ServicerContext) -> pb.RegisterFunctionResponse:
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            self.core.register_function(caller, request.function)
        return pb.RegisterFunctionResponse()

    def LookupFunction(self, request: pb.LookupFunctionRequest,
                       context: grpc.ServicerContext) -> pb.LookupFunctionResponse:
        caller = self._caller(context)
        with mapped_errors(context, _CATCH, ERRORS):
            if caller == "controller":
                cluster = self.core.functions.get(request.function)
                if cluster is None:
                    raise LookupError(f"unknown function {request.function!r}")
                return pb.LookupFunctionResponse(cluster=cluster,
                                                 proxy=self.core.proxy_of(cluster))
            cluster, proxy = self.core.lookup(caller, request.function)
        return pb.LookupFunctionResponse(cluster=cluster, proxy=proxy)
