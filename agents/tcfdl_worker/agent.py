"""Wiring of a TCFDL worker (function instances; a NATS client, no server of its own).

Configuration (``settings`` of /etc/edgeferry/tcfdl_worker.yaml; tls as every agent)::

    settings:
      cluster: b
      nats: tls://10.10.0.12:4222
      nats_server_name: ""
      master: 10.10.0.12:50071        # this cluster's master (RegisterInstance)
      manager: 10.10.0.11:50070       # keys (hop key with the proxy, EAE processor keys)
      proxy: tcfdl-proxy.edge2        # the CN of this cluster's TEE proxy (HSE's last hop)
      functions: {mlp: mlp}           # function -> implementation (agent.FUNCTIONS)
      eae: [umbral, p256-paper]       # PRE schemes to enroll for at start

At start the worker enrolls for each EAE scheme and function with the manager (its proxy can
then fetch RK_f->j), registers each function with its master, and serves
``tcfdl.inst.<its CN>`` until SIGTERM. The command (`main`) also listens on the configured
gRPC port with the health service only (no RPC of its own).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import EXIT_ENVIRONMENT, EXIT_OK, AgentConfigError, AgentError
from agents.common.logging import configure_logging, get_logger
from agents.common.runner import config_from_argv
from agents.common.server import AgentServer
from agents.common.tls import certificate_cn
from agents.security.tcfdl.names import ADDRESS_PATTERN, CLUSTER_PATTERN, NATS_URL_PATTERN
from agents.security.tcfdl.pre import PartyKey
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_master.client import MasterClient, connect, tls_context
from agents.tcfdl_worker import mlp
from agents.tcfdl_worker.core import Function, InstanceCore
from agents.tcfdl_worker.service import WorkerService

#: the functions a worker can serve, by name
FUNCTIONS: dict[str, Function] = {
    "mlp": mlp.infer,
    "sha256": lambda data: hashlib.sha256(data).digest(),
    # the case study's pipeline (mlp.stage): the model split in two, one stage per instance
    "mlp-stage1": lambda data: mlp.stage(1, data),
    "mlp-stage2": lambda data: mlp.stage(2, data),
}


class WorkerSettings(BaseModel):
    """``settings`` of a worker (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = Field(pattern=CLUSTER_PATTERN)
    nats: str = Field(pattern=NATS_URL_PATTERN)
    nats_server_name: str = ""
    master: str = Field(pattern=ADDRESS_PATTERN)
    manager: str = Field(pattern=ADDRESS_PATTERN)
    proxy: str = Field(pattern=r"^tcfdl-proxy\.[A-Za-z0-9._-]{1,128}$")
    #: function name -> implementation (a FUNCTIONS key); several names may share one
    functions: dict[str, str] = Field(default_factory=lambda: {"mlp": "mlp"}, min_length=1,
                                      max_length=64)
    eae: list[str] = Field(default_factory=lambda: ["umbral", "p256-paper"], max_length=2)


async def serve_worker(config: AgentConfig, stop: asyncio.Event,
                       started: Callable[[WorkerService], None] | None = None) -> None:
    """Enroll, register, serve until `stop` is set (`started` is called once serving)."""
    s = config.settings_as(WorkerSettings)
    if config.tls is None:
        raise AgentConfigError("a TCFDL worker needs tls (its identity is its certificate)")
    unknown = sorted(set(s.functions.values()) - set(FUNCTIONS))
    if unknown:
        raise AgentConfigError(f"settings.functions: unknown {unknown}; choose from "
                               f"{sorted(FUNCTIONS)}")
    me = certificate_cn(config.tls.cert)
    manager_ch = secure_channel_from_config(config.tls, s.manager)
    master_ch = secure_channel_from_config(config.tls, s.master)
    manager = ManagerClient(manager_ch)
    keys: dict[tuple[str, str], tuple[PartyKey, bytes]] = {}
    for pre in s.eae:
        for fn in s.functions:
            keys[(pre, fn)] = manager.enroll(pre, fn, processor=True)

    def enrolled(pre: str, fn: str) -> tuple[PartyKey, bytes]:
        if (pre, fn) not in keys:
            keys[(pre, fn)] = manager.enroll(pre, fn, processor=True)
        return keys[(pre, fn)]

    core = InstanceCore(me, s.proxy, {f: FUNCTIONS[i] for f, i in s.functions.items()},
                        hop_key=manager.hop_key, enrolled=enrolled)
    ctx = tls_context(config.tls.ca_cert, config.tls.cert, config.tls.key)
    nc = await connect(s.nats, ctx, name=me, server_name=s.nats_server_name,
                           max_reconnect_attempts=-1)
    service = WorkerService(nc, core)
    await service.start()
    master = MasterClient(master_ch)
    for fn in sorted(s.functions):
        master.register_instance(fn)
    get_logger("tcfdl_worker").info("serving", instance=me, functions=sorted(s.functions))
    if started is not None:
        started(service)
    try:
        await stop.wait()
    finally:
        await nc.close()
        manager_ch.close()
        master_ch.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.tcfdl_worker``: flags and config as every agent, then serve."""
    try:
        config = config_from_argv("tcfdl_worker", argv)
        configure_logging(config.name, config.log_level, log_file=config.log_file)
    except AgentError as err:
        print(f"tcfdl_worker: error: {err}")
        return err.exit_code

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # the deployed worker's gRPC endpoint: health (and reflection) only, over mTLS, so the
        # deployment waits on it and `edgeferry verify` checks it like every agent's
        health = AgentServer(config)
        health.start()
        try:
            await serve_worker(config, stop)
        finally:
            health.stop(0.5)

    try:
        asyncio.run(run())
    except AgentError as err:
        print(f"tcfdl_worker: error: {err}")
        return err.exit_code
    except Exception as err:  # manager, master or NATS unreachable at start
        print(f"tcfdl_worker: error: cannot start: {type(err).__name__}: {err}")
        return EXIT_ENVIRONMENT
    return EXIT_OK
