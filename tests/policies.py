"""Every agent's authorization table (agents/*/policy.py) and the proto service descriptors,
for the tests that check the tables are complete and the matrix test generated from them."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from agents._proto.edgeferry.audit.v1 import audit_service_pb2
from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2
from agents._proto.edgeferry.node.v1 import node_service_pb2
from agents._proto.edgeferry.ras.v1 import ras_service_pb2
from agents._proto.edgeferry.smf.v1 import smf_service_pb2
from agents.audit.policy import AUDIT_POLICY
from agents.common.authz import Policy
from agents.ledger.policy import CENTRAL_POLICY, LEDGER_POLICY, PEER_POLICY
from agents.node.policy import NODE_POLICY, RASP_ENDPOINT_POLICY, SSP_SERVER_POLICY
from agents.ras.policy import RAS_POLICY
from agents.smf.policy import SMF_POLICY

ALL_POLICIES: dict[str, Policy] = {p.service: p for p in (
    NODE_POLICY, RASP_ENDPOINT_POLICY, SSP_SERVER_POLICY, RAS_POLICY, SMF_POLICY,
    AUDIT_POLICY, LEDGER_POLICY, PEER_POLICY, CENTRAL_POLICY)}


def service_descriptors() -> dict[str, ServiceDescriptor]:
    """Every service the agents' protos declare, by full name."""
    out: dict[str, ServiceDescriptor] = {}
    for module in (audit_service_pb2, ledger_service_pb2, node_service_pb2, ras_service_pb2,
                   smf_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            out[service.full_name] = service
    return out
