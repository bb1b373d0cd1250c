"""Who may call the ledger agent's services (agents.common.authz tables; deny by default).

Node ids are bound to certificates: ``ledger-peer.<host>`` registers and confirms only for
the ids its peers role names (``<host>``, ``<host>-<n>``, and ``<host>-net<i>-<n>`` of the
ledger lab's networks); ``smf.<host>`` registers only the id ``smf``. Only the SMF submits
metadata transactions (to the validator or to a central service) and waits for their
confirmations; only the validator delivers blocks to peers.
"""

from __future__ import annotations

import re
from typing import Any

from agents.common.authz import CONTROLLER, Policy, Principal, allow

LEDGER_SERVICE = "edgeferry.ledger.v1.LedgerService"
PEER_SERVICE = "edgeferry.ledger.v1.LedgerPeerService"
CENTRAL_SERVICE = "edgeferry.ledger.v1.CentralMetadataService"

#: The node id the SMF registers with (settings.ledger.node_id of the deployed SMF).
SMF_NODE_ID = "smf"


def owns_node_id(who: Principal, node_id: str) -> bool:
    """True when the certificate `who` may act for ledger node `node_id`."""
    if who.role == "smf":
        return node_id == SMF_NODE_ID
    if who.role == "ledger-peer":
        return re.fullmatch(rf"{re.escape(who.host)}(-net\d+)?(-\d+)?", node_id) is not None
    return False


def _own_registrations(who: Principal, request: Any) -> bool:
    regs = list(request.registrations)
    return bool(regs) and all(owns_node_id(who, r.node_id) for r in regs)


def _own_confirmations(who: Principal, request: Any) -> bool:
    return all(owns_node_id(who, c.peer_id) for c in request.confirmations)


_READ = allow("smf", "ledger-peer", CONTROLLER)

LEDGER_POLICY = Policy(LEDGER_SERVICE, {
    "RegisterNode": allow("smf", "ledger-peer", check=_own_registrations,
                          objects="the node ids bound to its certificate"),
    "SubmitTransaction": allow("smf"),
    "GetConfirmations": allow("smf"),
    "SubmitConfirmations": allow("ledger-peer", check=_own_confirmations,
                                 objects="the node ids bound to its certificate"),
    "GetBlocks": _READ,
    "GetMetadata": _READ,
    "GetStatus": _READ,
})

PEER_POLICY = Policy(PEER_SERVICE, {
    "DeliverBlocks": allow("ledger-validator"),
    "GetMetadata": allow("smf", "ledger-validator", CONTROLLER),
    "GetStatus": allow("smf", "ledger-validator", CONTROLLER),
})

CENTRAL_POLICY = Policy(CENTRAL_SERVICE, {
    "PutMetadata": allow("smf"),
    "GetMetadata": allow("smf", CONTROLLER),
})
