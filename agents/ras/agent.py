"""Wiring of the RAS agent: settings, registry identity (created at first start), store, servicer.

Configuration (``settings`` of /etc/edgeferry/ras.yaml)::

    settings:
      name: registry            # the Registry's principal name in RASP

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


def setup_ras(server: AgentServer, config: AgentConfig) -> RegistryCore:
    settings = config.settings_as(RasSettings)
    data = config.resolved_data_dir
    identity = load_or_create_identity(data / "keys" / "registry.key", settings.name)
    store = Store.open(data / "ras.sqlite3")
    server.on_stop(store.close)
    core = RegistryCore(identity, store)
    server.add(
        add_to_server,
        RasServicer(core),
        SERVICE_NAME,
        policy=RAS_POLICY,
    )
    return core
