"""Who may call the TCFDL service manager (agents.common.authz table; deny by default).

The controller admits nodes. A proxy attests itself and fetches re-encryption keys (the core
also requires it to be attested and the instance to be in its cluster). Instances (workers) and
clients enroll for EAE keys and fetch HSE hop keys (the core requires a proxy on the other end);
proxies fetch hop keys too. Masters register their cluster's functions. Peers that send read a
proxy's attestation record; masters and clients look functions up.
"""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

MANAGER_SERVICE = "edgeferry.tcfdl.v1.TcfdlManagerService"

MANAGER_POLICY = Policy(MANAGER_SERVICE, {
    "AdmitNode": allow(CONTROLLER),
    "Attest": allow("tcfdl-proxy"),
    "GetAttestation": allow(CONTROLLER, "tcfdl-master", "tcfdl-proxy", "tcfdl-worker",
                            "tcfdl-client"),
    "EnrollInstance": allow("tcfdl-worker", "tcfdl-client"),
    "GetReKey": allow("tcfdl-proxy"),
    "GetHopKey": allow("tcfdl-proxy", "tcfdl-worker", "tcfdl-client"),
    "RegisterFunction": allow("tcfdl-master"),
    "LookupFunction": allow(CONTROLLER, "tcfdl-master", "tcfdl-client"),
})
