"""gRPC side of the RAS agent: protobuf <-> RegistryCore, refusals -> status + error codes."""

from __future__ import annotations

import grpc

from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as pb
from agents._proto.edgeferry.ras.v1 import ras_service_pb2_grpc as pb_grpc
from agents.common.convert import (
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.status import protocol_errors
from agents.ras.domain import RegistryCore

SERVICE_NAME = "edgeferry.ras.v1.RasService"


class RasServicer(pb_grpc.RasServiceServicer):
    """RasService over a RegistryCore (who may call what: agents/ras/policy.py)."""

    def __init__(self, core: RegistryCore) -> None:
        self.core = core

    def RegisterCloud(
        self, request: pb.RegisterCloudRequest, context: grpc.ServicerContext
    ) -> pb.RegisterCloudResponse:
        with protocol_errors(context):
            public = identity_from_pb(request.identity)
            free = self.core.register_cloud(
                public,
                resources_from_pb(request.maximum),
                resources_from_pb(request.allocated, request=True),
            )
        return pb.RegisterCloudResponse(free=resources_to_pb(free))

    def RegisterServer(
        self, request: pb.RegisterServerRequest, context: grpc.ServicerContext
    ) -> pb.RegisterServerResponse:
        with protocol_errors(context):
            self.core.register_server(identity_from_pb(request.identity))
        return pb.RegisterServerResponse()

    def GetRegistryIdentity(
        self, request: pb.GetRegistryIdentityRequest, context: grpc.ServicerContext
    ) -> pb.GetRegistryIdentityResponse:
        return pb.GetRegistryIdentityResponse(
            identity=identity_to_pb(self.core.public, pb.PublicIdentity)
        )

    def GetTable(
        self, request: pb.GetTableRequest, context: grpc.ServicerContext
    ) -> pb.GetTableResponse:
        table = self.core.table
        clouds = [
            pb.CloudRow(
                name=name,
                maximum=resources_to_pb(e.maximum),
                allocated=resources_to_pb(e.allocated),
                free=resources_to_pb(table.free_of(name)),
                fingerprint=e.public.fingerprint(),
            )
            for name, e in sorted(table.clouds.items())
        ]
        return pb.GetTableResponse(
            clouds=clouds,
            servers=sorted(table.servers),
            allocations=[
                pb.AllocationRow(server=s, cloud=c, allocated=resources_to_pb(r))
                for (s, c), r in sorted(table.allocations.items())
            ],
            locations=[
                pb.LocationRow(service=s, cloud=c) for s, c in sorted(table.locations.items())
            ],
            service_allocations=[
                pb.ServiceAllocationRow(service=name, server=a.server, cloud=a.cloud,
                                        allocated=resources_to_pb(a.allocated),
                                        session_id=a.session_id)
                for name, a in sorted(table.services.items())
            ],
        )

    def Deliver(
        self, request: pb.RegistryDeliverRequest, context: grpc.ServicerContext
    ) -> pb.RegistryDeliverResponse:
        with protocol_errors(context):
            reply, seconds = self.core.deliver(request.message)
        return pb.RegistryDeliverResponse(reply=reply or b"", handle_seconds=seconds)


def add_to_server(servicer: RasServicer, server: grpc.Server) -> None:
    pb_grpc.add_RasServiceServicer_to_server(servicer, server)
