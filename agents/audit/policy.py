"""Who may call the audit agent (agents.common.authz table; deny by default): the controller
administers edges and container policies; the SMF evaluates a migration and records the new
location (owner tokens are checked in addition); the controller and the node agents report
edge state. The UI server (role ui) calls the owner-scoped methods for its signed-in owners
(the owner token it seals is checked in addition)."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, UI, Policy, allow

AUDIT_SERVICE = "edgeferry.audit.v1.AuditService"

_ADMIN = allow(CONTROLLER)
_OWNERS = allow(CONTROLLER, UI)

AUDIT_POLICY = Policy(AUDIT_SERVICE, {
    "RegisterEdge": _OWNERS,
    "UpdateEdge": _OWNERS,
    "DeleteEdge": _OWNERS,
    "RotateShareKey": _OWNERS,
    "RedeemShareKey": _OWNERS,
    "ListEdges": _OWNERS,
    "RegisterContainerPolicy": _OWNERS,
    "UpdateContainerPolicy": _OWNERS,
    "DeleteContainerPolicy": _OWNERS,
    "GetContainerPolicy": _OWNERS,
    "VerifyAuditLog": _OWNERS,
    "SetContainerLocation": allow("smf", CONTROLLER),
    "Evaluate": allow("smf", CONTROLLER, UI),
    "ReadAuditLog": _OWNERS,
    "ReportEdgeState": allow("node", CONTROLLER),
})
