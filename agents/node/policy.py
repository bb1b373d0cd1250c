"""Who may call the node agent's services (agents.common.authz tables; deny by default).

* NodeService: neighbours (``node.*``), the SMF and the controller read resources, submit
  service requests (Algorithm 3) and read a migration's phases; only the SMF and the
  controller run, stop, start, commit, push, pull, remove or probe workloads, and export,
  import or load a diff (the direct order); only the SMF (for
  its prepull) and the audit agent's monitor (container liveness, seed 002) ask which image and
  state a workload really runs with (DescribeWorkload); the monitor also reads resources; only
  neighbouring node agents publish their signed resource advertisements (PublishResources).
* RaspEndpointService: the SMF drives RASP (it relays every message, and only it sets the
  transfer of a diff-first migration after the push); the identity is public to the agents
  that register or address this endpoint.
* SspServerService: the controller provisions services (the CMS's role); the SMF and the
  applications (run by the controller) deliver SSP messages.
"""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

NODE_SERVICE = "edgeferry.node.v1.NodeService"
RASP_ENDPOINT_SERVICE = "edgeferry.ras.v1.RaspEndpointService"
SSP_SERVER_SERVICE = "edgeferry.smf.v1.SspServerService"

_READ = allow("node", "smf", CONTROLLER)
_CONTROL = allow("smf", CONTROLLER)

NODE_POLICY = Policy(NODE_SERVICE, {
    # the audit agent's monitor polls utilisation and liveness (seed 002, Figure 8)
    "GetResources": allow("node", "smf", "audit", CONTROLLER),
    "SubmitRequest": _READ,
    "GetMigration": _READ,
    "RunWorkload": _CONTROL,
    "RemoveWorkload": _CONTROL,
    "StopContainer": _CONTROL,
    "StartContainer": _CONTROL,
    "CommitContainer": _CONTROL,
    "PushImage": _CONTROL,
    "PullImage": _CONTROL,
    "PrePullImage": _CONTROL,
    "ProbeFirstResponse": _CONTROL,
    # the direct order: the SMF relays a stopped source's diff to the destination
    "ExportDiff": _CONTROL,
    "ImportDiff": _CONTROL,
    "LoadDiff": _CONTROL,
    # the audit agent's monitor checks container liveness (the container's state only)
    "DescribeWorkload": allow("smf", "audit"),
    # a neighbour's signed periodic advertisement (seed 000 Algorithm 1)
    "PublishResources": allow("node"),
})

_IDENTITY = allow("smf", "ras", "node", CONTROLLER)
_RASP = allow("smf")

RASP_ENDPOINT_POLICY = Policy(RASP_ENDPOINT_SERVICE, {
    "GetIdentity": _IDENTITY,
    "PrepareSource": _RASP,
    "Advertise": _RASP,
    "Deliver": _RASP,
    "ReportLocation": _RASP,
    "Release": _RASP,
    "SetTransfer": _RASP,
    "GetSessionInfo": allow("smf", CONTROLLER),
})

SSP_SERVER_POLICY = Policy(SSP_SERVER_SERVICE, {
    "Provision": allow(CONTROLLER),
    "GetIdentity": _IDENTITY,
    "Deliver": allow("smf", CONTROLLER),
})
