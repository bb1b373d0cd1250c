"""Who may call the audit agent (agents.common.authz table; deny by default): the controller
administers edges and container policies; the SMF evaluates a migration and records the new
location (owner tokens are checked in addition); the controller and the node agents report
edge state."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

AUDIT_SERVICE = "edgeferry.audit.v1.AuditService"

_ADMIN = allow(CONTROLLER)

AUDIT_POLICY = Policy(AUDIT_SERVICE, {
    "RegisterEdge": _ADMIN,
    "UpdateEdge": _ADMIN,
    "DeleteEdge": _ADMIN,
    "RotateShareKey": _ADMIN,
    "RedeemShareKey": _ADMIN,
    "ListEdges": _ADMIN,
    "RegisterContainerPolicy": _ADMIN,
    "UpdateContainerPolicy": _ADMIN,
    "DeleteContainerPolicy": _ADMIN,
    "GetContainerPolicy": _ADMIN,
    "VerifyAuditLog": _ADMIN,
    "SetContainerLocation": allow("smf", CONTROLLER),
    "Evaluate": allow("smf", CONTROLLER),
    "ReportEdgeState": allow("node", CONTROLLER),
})
