"""Who may call a TCFDL TEE proxy (agents.common.authz table; deny by default): only masters
hand it frames (its own cluster's master in a deployment; the proxy itself holds no routing
state, and every frame it opens or re-encrypts must authenticate under keys the manager gave
this proxy)."""

from __future__ import annotations

from agents.common.authz import Policy, allow

PROXY_SERVICE = "edgeferry.tcfdl.v1.TcfdlProxyService"

PROXY_POLICY = Policy(PROXY_SERVICE, {
    "Transform": allow("tcfdl-master"),
})
