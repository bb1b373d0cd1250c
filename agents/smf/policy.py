"""Who may call the SMF (agents.common.authz table; deny by default): the controller is the
administrator, the CMS and the applications' front end of the lab, so every registration,
request, migration and listing is the controller's; the SMF's public identity is read by the
agents that verify its messages; the edges' node agents publish their signed resource
advertisements (seed 000 Algorithm 1, PublishResources), which the controller lists
(ListAdvertisements) before it asks for a placement. Capabilities are checked in addition
by the SMF itself."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, UI, Policy, allow

SMF_SERVICE = "edgeferry.smf.v1.SmfService"

_ADMIN = allow(CONTROLLER)
#: MigrateService and its streaming twin (live phases for the UI and the CLI): the same roles
_MIGRATE = allow(CONTROLLER, UI)

SMF_POLICY = Policy(SMF_SERVICE, {
    "RegisterCms": _ADMIN,
    "RegisterService": _ADMIN,
    "RegisterUser": _ADMIN,
    "RegisterDevice": _ADMIN,
    "ReissueCapability": _ADMIN,
    "RevokeCapability": _ADMIN,
    "AddServer": _ADMIN,
    "RequestService": _ADMIN,
    "MigrateService": _MIGRATE,
    "MigrateServiceStream": _MIGRATE,
    "GetService": allow(CONTROLLER, UI),
    "ListServices": _ADMIN,
    "ListUsers": _ADMIN,
    "ListDevices": _ADMIN,
    "GetSmfIdentity": allow("node", "ras", CONTROLLER),
    "PublishResources": allow("node"),
    "ListAdvertisements": _ADMIN,
})
