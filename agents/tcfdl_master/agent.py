"""Wiring of a TCFDL master: its cluster's NATS connection, router, proxy and manager clients.

Configuration (``settings`` of /etc/edgeferry/tcfdl_master.yaml)::

    settings:
      cluster: a
      nats: tls://10.10.0.11:4222       # this cluster's nats-server (natsconf renders its config)
      nats_server_name: ""              # name checked on the server certificate (default: host)
      proxy: 127.0.0.1:50072            # this cluster's TEE proxy (a separate process)
      manager: 10.10.0.11:50070         # the service manager
      queue: true                       # JetStream task queue (acknowledged path)
      witness_file: ""                  # record every frame handled (tests, audits)
      rpc_timeout_s: 30
      queue_ack_wait_s: 30              # redelivery of an unacknowledged queued task

The gRPC server (TcfdlMasterService) runs on the agent's thread pool; the NATS side on one
asyncio loop in its own thread, stopped with the server.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError, AgentStartError
from agents.common.server import AgentServer
from agents.security.tcfdl import frame, schemes
from agents.security.tcfdl.names import ADDRESS_PATTERN, CLUSTER_PATTERN, NATS_URL_PATTERN
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_master import bus
from agents.tcfdl_master.policy import MASTER_POLICY
from agents.tcfdl_master.routing import FunctionTable, Router
from agents.tcfdl_master.service import MasterService, Witness
from agents.tcfdl_master.servicer import SERVICE_NAME, MasterServicer, add_to_server
from agents.tcfdl_proxy.client import ProxyClient

#: gRPC message bound of the proxy channel (a frame is at most 8 MiB + 4 KiB)
_GRPC_LIMIT = 16 * 1024 * 1024


class MasterSettings(BaseModel):
    """``settings`` of a master (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = Field(pattern=CLUSTER_PATTERN)
    nats: str = Field(pattern=NATS_URL_PATTERN)
    nats_server_name: str = ""
    proxy: str = Field(pattern=ADDRESS_PATTERN)
    manager: str = Field(pattern=ADDRESS_PATTERN)
    queue: bool = True
    witness_file: Path | None = None
    rpc_timeout_s: float = Field(default=30.0, gt=0, le=600)
    #: seconds before an unacknowledged queued task is redelivered
    queue_ack_wait_s: float = Field(default=30.0, ge=1, le=3600)


class LoopThread:
    """An asyncio loop on its own daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = 30.0) -> Any:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def through_proxy(proxy: ProxyClient, scheme: str, data: bytes, function: str, nxt: str,
                  first: bool, instance: str) -> tuple[bytes, int]:
    """The next hop's frame from the cluster's proxy. Under EAE the proxy re-encrypts the
    capsule only: it is sent the frame's envelope and the ciphertext body stays here,
    unchanged (a 4 MB task costs the call a few hundred bytes each way, not 4 MB twice)."""
    if schemes.is_eae(scheme):
        return frame.on_envelope(data, lambda envelope: proxy.transform(
            scheme, envelope, function=function, next_hop=nxt, first=first, instance=instance,
            envelope_only=True))
    return proxy.transform(scheme, data, function=function, next_hop=nxt, first=first,
                           instance=instance)


def setup_master(server: AgentServer, config: AgentConfig) -> MasterService:
    """Connect to NATS, start routing and register the master's servicer."""
    s = config.settings_as(MasterSettings)
    if config.tls is None:
        raise AgentConfigError("a TCFDL master needs tls (NATS and its peers use the lab CA)")
    opts = [("grpc.max_receive_message_length", _GRPC_LIMIT),
            ("grpc.max_send_message_length", _GRPC_LIMIT)]
    manager_ch = secure_channel_from_config(config.tls, s.manager)
    proxy_ch = secure_channel_from_config(config.tls, s.proxy, options=opts)
    manager = ManagerClient(manager_ch, timeout=s.rpc_timeout_s)
    proxy = ProxyClient(proxy_ch, timeout=s.rpc_timeout_s)
    table = FunctionTable()
    router = Router(s.cluster, table, manager.lookup)

    def transform(scheme: str, data: bytes, function: str, nxt: str, first: bool,
                  instance: str) -> tuple[bytes, int]:
        return through_proxy(proxy, scheme, data, function, nxt, first, instance)

    loop = LoopThread(f"tcfdl-master-{s.cluster}")
    ctx = bus.tls_context(config.tls.ca_cert, config.tls.cert, config.tls.key)

    async def start() -> MasterService:
        nc = await bus.connect(s.nats, ctx, name=f"tcfdl-master-{s.cluster}",
                               server_name=s.nats_server_name, max_reconnect_attempts=-1)
        svc = MasterService(nc, cluster=s.cluster, router=router, transform=transform,
                            witness=Witness(s.witness_file) if s.witness_file else None,
                            rpc_timeout_s=s.rpc_timeout_s,
                            queue_ack_wait_s=s.queue_ack_wait_s)
        await svc.start(queue=s.queue)
        return svc

    try:
        service: MasterService = loop.run(start())
    except Exception as err:
        loop.stop()
        raise AgentStartError(f"tcfdl master: cannot start on NATS {s.nats}: "
                              f"{type(err).__name__}: {err}") from None

    def stop() -> None:
        try:
            loop.run(service.stop(), timeout=5)
        finally:
            loop.stop()
            manager_ch.close()
            proxy_ch.close()

    server.on_stop(stop)
    server.add(add_to_server, MasterServicer(table, manager.register_function), SERVICE_NAME,
               policy=MASTER_POLICY)
    return service
