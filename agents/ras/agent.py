"""Wiring of the RAS agent: settings, registry identity (created at first start), store, servicer.

Configuration (``settings`` of /etc/edgeferry/ras.yaml)::

    settings:
      name: registry            # the Registry's principal name in RASP
      session_capacity: 10000   # RASP sessions kept at most (LIMIT_REACHED beyond)
      session_ttl_s: 3600       # lifetime of a RASP session from its step 2

Who may call which RPC is agents/ras/policy.py (by certificate role).

The registry's keys live in ``<data_dir>/keys/registry.key`` (0600, created on first start);
its public identity is written next to it as ``registry.pub`` for the endpoints' configuration.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.common.config import AgentConfig
from agents.common.keys import load_or_create_identity
from agents.common.server import AgentServer
from agents.common.store import Store
from agents.ras.domain import RegistryCore
from agents.ras.policy import RAS_POLICY
from agents.ras.servicer import SERVICE_NAME, RasServicer, add_to_server


class RasSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="registry", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    #: RASP sessions the registry keeps at most (a new one beyond is refused LIMIT_REACHED)
    session_capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    #: seconds a RASP session lives from its step 2 (an abandoned one frees its slot)
    session_ttl_s: float = Field(default=3600.0, gt=0)


def setup_ras(server: AgentServer, config: AgentConfig) -> RegistryCore:
    settings = config.settings_as(RasSettings)
    data = config.resolved_data_dir
    identity = load_or_create_identity(data / "keys" / "registry.key", settings.name)
    store = Store.open(data / "ras.sqlite3")
    server.on_stop(store.close)
    core = RegistryCore(identity, store, session_capacity=settings.session_capacity,
                        session_ttl_s=settings.session_ttl_s)
    server.add(
        add_to_server,
        RasServicer(core),
        SERVICE_NAME,
        policy=RAS_POLICY,
    )
    return core
