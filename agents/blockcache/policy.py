"""Who may call the blockcache agent (agents.common.authz table; deny by default).

The same table guards both modes (origin on the control host, edge on each edge host); an
RPC that makes no sense in a mode is refused there by the servicer (FAILED_PRECONDITION).

* edges (``blockcache.<host>``) ask each other and the origin for manifests and single blocks
  (peer queries, never recursive);
* the composer (``composer.<host>``) fetches a request's blocks through the home edge's cache,
  reads manifests and statistics and executes services (Execute, with a grant in the secure
  strategy);
* the controller (experiment runner) fetches (the hit-ratio runs), uploads files to the origin,
  configures caches and reads / resets statistics.
"""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

BLOCKCACHE_SERVICE = "edgeferry.blockcache.v1.BlockCacheService"

BLOCKCACHE_POLICY = Policy(BLOCKCACHE_SERVICE, {
    "GetManifest": allow("blockcache", "composer", CONTROLLER),
    "GetBlock": allow("blockcache", "composer", CONTROLLER),
    "Fetch": allow("composer", CONTROLLER),
    "PutFile": allow(CONTROLLER),
    "Configure": allow(CONTROLLER),
    "GetStats": allow("composer", CONTROLLER),
    "ResetStats": allow(CONTROLLER),
    "Execute": allow("composer"),
})
