"""Client of the RAS agent (the registry): registrations, its table, RASP delivery.

    ras = RasClient(channel)
    free = ras.register_cloud(edge_identity, maximum=Resources(8000, 16384, 200000, 40))
    reply, seconds = ras.deliver(step2)      # one RASP message to the registry
"""

from __future__ import annotations

from typing import Any

import grpc

from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as pb
from agents._proto.edgeferry.ras.v1 import ras_service_pb2_grpc as pb_grpc
from agents.common.convert import (
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.status import call
from agents.security.crypto import PublicIdentity
from agents.security.rasp import Resources

DEFAULT_TIMEOUT_S = 10.0


class RasClient:
    """Typed calls to the RAS agent."""

    def __init__(self, channel: grpc.Channel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = pb_grpc.RasServiceStub(channel)
        self.timeout = timeout

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self.stub, name), request, rpc=f"ras.{name}", timeout=self.timeout)

    def identity(self) -> PublicIdentity:
        return identity_from_pb(self._call("GetRegistryIdentity",
                                           pb.GetRegistryIdentityRequest()).identity)

    def register_cloud(
        self, public: PublicIdentity, maximum: Resources, allocated: Resources | None = None
    ) -> Resources:
        resp = self._call("RegisterCloud", pb.RegisterCloudRequest(
            identity=identity_to_pb(public, pb.PublicIdentity),
            maximum=resources_to_pb(maximum),
            allocated=resources_to_pb(allocated or Resources()),
        ))
        return resources_from_pb(resp.free)

    def register_server(self, public: PublicIdentity) -> None:
        self._call("RegisterServer", pb.RegisterServerRequest(
            identity=identity_to_pb(public, pb.PublicIdentity)))

    def table(self) -> pb.GetTableResponse:
        resp: pb.GetTableResponse = self._call("GetTable", pb.GetTableRequest())
        return resp

    def deliver(self, message: bytes) -> tuple[bytes, float]:
        resp = self._call("Deliver", pb.RegistryDeliverRequest(message=message))
        return bytes(resp.reply), float(resp.handle_seconds)
