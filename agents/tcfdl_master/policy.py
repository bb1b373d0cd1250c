"""Who may call a TCFDL master (agents.common.authz table; deny by default): a worker registers
itself (the instance is the caller's own certificate CN, never a name in the request); the
controller and clients list the cluster's functions."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

MASTER_SERVICE = "edgeferry.tcfdl.v1.TcfdlMasterService"

MASTER_POLICY = Policy(MASTER_SERVICE, {
    "RegisterInstance": allow("tcfdl-worker"),
    "ListFunctions": allow(CONTROLLER, "tcfdl-client"),
})
