"""RaspEndpointService: the node agent's Server SA / Cloud CB roles of RASP over gRPC.

The node agent hosts it on its AgentServer, on every edge host::

    core = EndpointCore(identity, registry=registry_public, store=store, maximum=MAX)
    add_rasp_endpoint(server, core)

or build everything from an agent configuration with `setup_rasp_endpoint(server, config)`
(settings under ``settings.rasp_endpoint``, see `EndpointSettings`).
"""

from __future__ import annotations

from pathlib import Path

import grpc
from pydantic import BaseModel, ConfigDict, Field

from agents._proto.edgeferry.ras.v1 import ras_service_pb2 as pb
from agents._proto.edgeferry.ras.v1 import ras_service_pb2_grpc as pb_grpc
from agents.common.config import AgentConfig
from agents.common.convert import (
    identity_from_pb,
    identity_to_pb,
    resources_from_pb,
    resources_to_pb,
)
from agents.common.errors import AgentConfigError
from agents.common.keys import load_or_create_identity, read_public_identity
from agents.common.server import AgentServer
from agents.common.status import protocol_errors
from agents.common.store import Store
from agents.node.convert import transfer_from_pb, transfer_to_pb
from agents.node.policy import RASP_ENDPOINT_POLICY
from agents.node.rasp_core import EndpointCore
from agents.security.rasp import Resources

SERVICE_NAME = "edgeferry.ras.v1.RaspEndpointService"


class RaspEndpointServicer(pb_grpc.RaspEndpointServiceServicer):
    """RaspEndpointService over an EndpointCore (who may call what: agents/node/policy.py)."""

    def __init__(self, core: EndpointCore) -> None:
        self.core = core

    def GetIdentity(
        self, request: pb.GetIdentityRequest, context: grpc.ServicerContext
    ) -> pb.GetIdentityResponse:
        return pb.GetIdentityResponse(
            identity=identity_to_pb(self.core.public, pb.PublicIdentity),
            free=resources_to_pb(self.core.free()),
        )

    def PrepareSource(
        self, request: pb.PrepareSourceRequest, context: grpc.ServicerContext
    ) -> pb.PrepareSourceResponse:
        with protocol_errors(context):
            self.core.prepare_source(
                request.migration_id,
                identity_from_pb(request.destination),
                resources_from_pb(request.requirement, request=True),
                transfer_from_pb(request.transfer),
            )
        return pb.PrepareSourceResponse()

    def Advertise(
        self, request: pb.AdvertiseRequest, context: grpc.ServicerContext
    ) -> pb.AdvertiseResponse:
        with protocol_errors(context):
            message, sid = self.core.advertise(identity_from_pb(request.server))
        return pb.AdvertiseResponse(message=message, session_id=sid)

    def Deliver(
        self, request: pb.EndpointDeliverRequest, context: grpc.ServicerContext
    ) -> pb.EndpointDeliverResponse:
        with protocol_errors(context):
            reply, done, seconds = self.core.deliver(request.message, request.migration_id)
        return pb.EndpointDeliverResponse(reply=reply or b"", done=done, handle_seconds=seconds)

    def ReportLocation(
        self, request: pb.ReportLocationRequest, context: grpc.ServicerContext
    ) -> pb.ReportLocationResponse:
        with protocol_errors(context):
            message = self.core.report_location(request.session_id)
        return pb.ReportLocationResponse(message=message)

    def GetSessionInfo(
        self, request: pb.SessionInfoRequest, context: grpc.ServicerContext
    ) -> pb.SessionInfoResponse:
        with protocol_errors(context):
            info = self.core.session_info(request.session_id)
        resp = pb.SessionInfoResponse(role=info.role, expect=info.expect, peer=info.peer)
        if info.transfer is not None:
            resp.transfer.CopyFrom(transfer_to_pb(info.transfer, pb.TransferDescriptor))
        return resp

    def SetTransfer(
        self, request: pb.SetTransferRequest, context: grpc.ServicerContext
    ) -> pb.SetTransferResponse:
        with protocol_errors(context):
            self.core.set_transfer(request.session_id, transfer_from_pb(request.transfer))
        return pb.SetTransferResponse()

    def Release(
        self, request: pb.ReleaseRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseResponse:
        with protocol_errors(context):
            released, order = self.core.release(request.order)
        return pb.ReleaseResponse(released=released, service=order.service,
                                  free=resources_to_pb(self.core.free()))


def add_rasp_endpoint(
    server: AgentServer, core: EndpointCore
) -> RaspEndpointServicer:
    """Register the endpoint servicer on an AgentServer (before start())."""
    servicer = RaspEndpointServicer(core)
    server.add(pb_grpc.add_RaspEndpointServiceServicer_to_server, servicer, SERVICE_NAME,
               policy=RASP_ENDPOINT_POLICY)
    return servicer


class ResourcesSetting(BaseModel):
    """Resources in protocol units: millicores, MiB, MiB, Mbit/s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: int = Field(default=0, ge=0)
    memory: int = Field(default=0, ge=0)
    storage: int = Field(default=0, ge=0)
    network: int = Field(default=0, ge=0)

    def value(self) -> Resources:
        return Resources(self.cpu, self.memory, self.storage, self.network)


class EndpointSettings(BaseModel):
    """``settings.rasp_endpoint`` of an agent hosting the endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Name of this host in RASP (its cloud / server id); default: the agent's name.
    name: str | None = None
    #: The registry's public identity file (written by the RAS agent as keys/registry.pub).
    registry_identity: Path
    #: MAX of this host (Algorithm 1); unset: the node agent's MAX inside the host's limits
    #: (cgroup quota / memory limit or the inventory's override, agents/node/resources.py).
    maximum: ResourcesSetting | None = None
    #: initial ALLOC (services not placed by RASP)
    allocated: ResourcesSetting = Field(default_factory=ResourcesSetting)


def setup_rasp_endpoint(
    server: AgentServer, config: AgentConfig, settings: EndpointSettings | None = None,
    host_maximum: Resources | None = None,
) -> EndpointCore:
    """Build an EndpointCore from `config` (identity in <data_dir>/keys) and register it.
    MAX: ``settings.maximum`` when set, else ``host_maximum`` (the node's measured MAX)."""
    if settings is None:
        raw = config.settings.get("rasp_endpoint")
        if raw is None:
            raise AgentConfigError(f"settings.rasp_endpoint is missing in {config.source}")
        settings = EndpointSettings.model_validate(raw)
    name = settings.name or config.name
    data = config.resolved_data_dir
    if settings.maximum is not None:
        maximum = settings.maximum.value()
    elif host_maximum is not None:
        maximum = host_maximum
    else:
        raise AgentConfigError("settings.rasp_endpoint.maximum is missing and no host MAX given")
    identity = load_or_create_identity(data / "keys" / "rasp-endpoint.key", name)
    store = Store.open(data / "rasp-endpoint.sqlite3")
    server.on_stop(store.close)
    core = EndpointCore(
        identity,
        registry=read_public_identity(settings.registry_identity),
        store=store,
        maximum=maximum,
        allocated=settings.allocated.value(),
    )
    add_rasp_endpoint(server, core)
    return core
