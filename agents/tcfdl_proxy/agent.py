"""Wiring of a TCFDL TEE proxy: its identity, the manager's client, emulated attestation.

Configuration (``settings`` of /etc/edgeferry/tcfdl_proxy.yaml)::

    settings:
      manager: 10.10.0.11:50070      # the service manager (mTLS)
      debug_dump: false              # MEASURED: log HSE plaintext heads (a leak; not approved)
      replay_window_ms: 60000        # MEASURED: freshness window of its replay cache
      attest_timeout_s: 20           # how long start-up retries a manager that is not up yet

At start the proxy measures its code (agents/tcfdl_proxy, agents/security/tcfdl) and the MEASURED
settings and asks the manager to attest it. NO TEE HARDWARE: attestation is emulated (see
agents.security.tcfdl.attestation); the proxy's isolation is its own process and Unix user. A
proxy the manager refuses keeps serving, but the manager issues it no keys and peers refuse to
send to it (they verify its record first).
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from pydantic import BaseModel, ConfigDict, Field

from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError
from agents.common.logging import get_logger
from agents.common.server import AgentServer
from agents.common.status import RemoteProtocolError
from agents.common.tls import certificate_cn
from agents.security.tcfdl import attestation
from agents.security.tcfdl.names import ADDRESS_PATTERN
from agents.tcfdl_manager.client import ManagerClient
from agents.tcfdl_proxy.core import ProxyCore
from agents.tcfdl_proxy.policy import PROXY_POLICY
from agents.tcfdl_proxy.servicer import SERVICE_NAME, ProxyServicer, add_to_server


class ProxySettings(BaseModel):
    """``settings`` of a proxy (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manager: str = Field(pattern=ADDRESS_PATTERN)
    debug_dump: bool = False
    replay_window_ms: int = Field(default=60_000, ge=1000, le=3_600_000)
    attest_timeout_s: float = Field(default=20.0, ge=0, le=600)

    def measured(self) -> dict[str, Any]:
        """The settings the measurement covers."""
        return {"debug_dump": self.debug_dump, "replay_window_ms": self.replay_window_ms}


def attest(manager: ManagerClient, measurement: bytes, timeout_s: float) -> bool:
    """Ask the manager to attest `measurement`, retrying an unreachable manager until
    `timeout_s`; False when it refuses (logged)."""
    log = get_logger("tcfdl_proxy.attest")
    end = time.monotonic() + timeout_s
    while True:
        try:
            manager.attest(measurement)
            log.info("attested", measurement=measurement.hex())
            return True
        except RemoteProtocolError as err:
            log.error("attestation_refused", reason=err.message)
            return False
        except grpc.RpcError as err:
            if time.monotonic() >= end:
                log.error("manager_unreachable", error=str(err.details()))
                return False
            time.sleep(0.2)


def setup_proxy(server: AgentServer, config: AgentConfig) -> ProxyCore:
    """Build the proxy, attest it with the manager and register its servicer."""
    settings = config.settings_as(ProxySettings)
    if config.tls is None:
        raise AgentConfigError("a TCFDL proxy needs tls (its identity is its certificate)")
    me = certificate_cn(config.tls.cert)
    channel = secure_channel_from_config(config.tls, settings.manager)
    server.on_stop(channel.close)
    manager = ManagerClient(channel)
    log = get_logger("tcfdl_proxy.debug")

    def dump(payload: bytes) -> None:
        log.info("hse_plaintext", head=payload[:32].hex(), size=len(payload))

    core = ProxyCore(me, manager, replay_window_ms=settings.replay_window_ms,
                     debug_dump=dump if settings.debug_dump else None)
    measurement = attestation.measure(attestation.proxy_code_files(), settings.measured())
    attest(manager, measurement, settings.attest_timeout_s)
    server.add(add_to_server, ProxyServicer(core), SERVICE_NAME, policy=PROXY_POLICY)
    return core
