"""Clients of the node agent, for the SMF, the controller, tests and benchmarks.

* `node_stub`: the NodeService stub (the one way to reach a node agent's container phases);
* `EndpointClient`: typed calls to the node's RASP endpoint role (RaspEndpointService);
* `SspServerClient`: typed calls to the node's SSP chosen-server role (SspServerService).

    stub = node_stub(channel)
    report = stub.GetResources(node_pb.GetResourcesRequest(), timeout=10)
    identity, free = EndpointClient(channel).identity()
"""

from __future__ import annotations

from typing import Any

import grpc

from agents._proto.edgeferry.node.v1 import node_service_pb2_grpc as node_pb_grpc
from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as rasp_pb
from agents._proto.edgeferry.ras.v1 import ras_service_pb2_grpc as rasp_pb_grpc
from agents._proto.edgeferry.smf.v1 import smf_service_pb2 as ssp_pb
from agents._proto.edgeferry.smf.v1 import smf_service_pb2_grpc as ssp_pb_grpc
from agents.common.convert import (
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.status import call
from agents.node.convert import transfer_to_pb
from agents.security.capability import SealedCapability
from agents.security.crypto import PublicIdentity
from agents.security.rasp import Resources, TransferDescriptor

ENDPOINT_TIMEOUT_S = 10.0
SSP_SERVER_TIMEOUT_S = 30.0


def node_stub(channel: grpc.Channel) -> node_pb_grpc.NodeServiceStub:
    """The NodeService stub over `channel` (an mTLS channel to the node agent)."""
    return node_pb_grpc.NodeServiceStub(channel)


class EndpointClient:
    """Typed calls to a RaspEndpointService."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = ENDPOINT_TIMEOUT_S) -> None:
        self.stub = rasp_pb_grpc.RaspEndpointServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"endpoint.{name}",
                    timeout=self.timeout)

    def identity(self) -> tuple[PublicIdentity, Resources]:
        resp = self._call("GetIdentity", rasp_pb.GetIdentityRequest())
        return identity_from_pb(resp.identity), resources_from_pb(resp.free)

    def prepare_source(self, migration_id: str, destination: PublicIdentity,
                       requirement: Resources, transfer: TransferDescriptor) -> None:
        self._call("PrepareSource", rasp_pb.PrepareSourceRequest(
            migration_id=migration_id,
            destination=identity_to_pb(destination, rasp_pb.PublicIdentity),
            requirement=resources_to_pb(requirement),
            transfer=transfer_to_pb(transfer, rasp_pb.TransferDescriptor),
        ))

    def advertise(self, migration_id: str, server: PublicIdentity) -> tuple[bytes, bytes]:
        resp = self._call("Advertise", rasp_pb.AdvertiseRequest(
            migration_id=migration_id, server=identity_to_pb(server, rasp_pb.PublicIdentity)))
        return bytes(resp.message), bytes(resp.session_id)

    def deliver(self, message: bytes, migration_id: str = "") -> tuple[bytes, bool, float]:
        resp = self._call("Deliver", rasp_pb.EndpointDeliverRequest(
            message=message, migration_id=migration_id))
        return bytes(resp.reply), bool(resp.done), float(resp.handle_seconds)

    def report_location(self, session_id: bytes) -> bytes:
        resp = self._call("ReportLocation", rasp_pb.ReportLocationRequest(session_id=session_id))
        return bytes(resp.message)

    def session_info(self, session_id: bytes) -> rasp_pb.SessionInfoResponse:
        resp: rasp_pb.SessionInfoResponse = self._call(
            "GetSessionInfo", rasp_pb.SessionInfoRequest(session_id=session_id))
        return resp

    def set_transfer(self, session_id: bytes, transfer: TransferDescriptor) -> None:
        """Source side, diff-first order: the pushed image step 10 carries (before step 9)."""
        self._call("SetTransfer", rasp_pb.SetTransferRequest(
            session_id=session_id,
            transfer=transfer_to_pb(transfer, rasp_pb.TransferDescriptor)))

    def release(self, order: bytes) -> tuple[bool, Resources]:
        """Hand over the registry's release order; (allocation freed, FREE afterwards)."""
        resp = self._call("Release", rasp_pb.ReleaseRequest(order=order))
        return bool(resp.released), resources_from_pb(resp.free)


class SspServerClient:
    """Typed calls to an SspServerService."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = SSP_SERVER_TIMEOUT_S) -> None:
        self.stub = ssp_pb_grpc.SspServerServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"server.{name}",
                    timeout=self.timeout)

    def identity(self) -> PublicIdentity:
        return identity_from_pb(self._call("GetIdentity", ssp_pb.ServerIdentityRequest()).identity)

    def provision(self, service_id: str, capability: SealedCapability) -> None:
        self._call("Provision", ssp_pb.ProvisionRequest(service_id=service_id,
                                                        service_capability=capability.to_bytes()))

    def deliver(self, message: bytes) -> tuple[bytes, float]:
        resp = self._call("Deliver", ssp_pb.ServerDeliverRequest(message=message))
        return bytes(resp.reply), float(resp.handle_seconds)
