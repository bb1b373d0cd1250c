"""Who may call the RAS (agents.common.authz table; deny by default): the controller
registers clouds and servers, the SMF relays RASP messages, both read the table; the
registry's public identity is read by the agents that verify its messages."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

RAS_SERVICE = "edgeferry.ras.v1.RasService"

RAS_POLICY = Policy(RAS_SERVICE, {
    "RegisterCloud": allow(CONTROLLER),
    "RegisterServer": allow(CONTROLLER),
    "Deliver": allow("smf"),
    "GetTable": allow("smf", CONTROLLER),
    "GetRegistryIdentity": allow("smf", "node", CONTROLLER),
})
