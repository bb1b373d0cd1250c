"""Wiring of the TCFDL service manager: settings, the hop-key secret, the attestation signer.

Configuration (``settings`` of /etc/edgeferry/tcfdl_manager.yaml)::

    settings:
      nodes:                        # admitted nodes (more by AdmitNode from the controller)
        - {cn: tcfdl-master.edge1, cluster: a}
        - {cn: tcfdl-proxy.edge1, cluster: a}
      references: []                # approved proxy measurements (hex); empty: this checkout's
                                    # proxy code with the default measured configuration
      attestation_ttl_s: 3600

The manager signs attestation records with its lab-CA certificate key (tls.key, CN
``tcfdl-manager.<host>``), so peers verify them against the lab CA alone. Hop keys derive from a
32-byte secret in ``<data_dir>/hop-secret`` (0600, made at first start). Keys and registrations
live in memory: a restarted manager re-issues (instances re-enroll, proxies re-attest).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field

from agents.common.config import AgentConfig
from agents.common.errors import AgentConfigError
from agents.common.keys import load_or_create_secret
from agents.common.server import AgentServer
from agents.security.tcfdl import attestation
from agents.security.tcfdl.names import CLUSTER_PATTERN
from agents.tcfdl_manager.core import ManagerCore
from agents.tcfdl_manager.policy import MANAGER_POLICY
from agents.tcfdl_manager.servicer import SERVICE_NAME, ManagerServicer, add_to_server


class NodeEntry(BaseModel):
    """One admitted node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cn: str = Field(pattern=r"^tcfdl-(master|proxy|worker|client)\.[A-Za-z0-9._-]{1,128}$")
    cluster: str = Field(pattern=CLUSTER_PATTERN)


class ManagerSettings(BaseModel):
    """``settings`` of the manager (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[NodeEntry] = Field(default_factory=list, max_length=4096)
    references: list[str] = Field(default_factory=list, max_length=64)
    attestation_ttl_s: float = Field(default=3600.0, gt=0, le=86400)


def setup_manager(server: AgentServer, config: AgentConfig) -> ManagerCore:
    """Build the manager's core and register its servicer with its policy."""
    settings = config.settings_as(ManagerSettings)
    if config.tls is None:
        raise AgentConfigError("the TCFDL manager identifies callers by their certificates: "
                               "configure tls (no --insecure-plaintext)")
    key = load_pem_private_key(config.tls.key.read_bytes(), password=None)
    cert = config.tls.cert.read_bytes()
    try:
        refs = [bytes.fromhex(r) for r in settings.references]
    except ValueError:
        raise AgentConfigError(f"settings.references: hex SHA-256 values (in {config.source})"
                               ) from None
    core = ManagerCore(
        hop_secret=load_or_create_secret(config.resolved_data_dir / "hop-secret",
                                         what="TCFDL hop-key secret"),
        signer=lambda record: attestation.sign(key, cert, record),
        references=refs or [attestation.reference_measurement()],
        attestation_ttl_s=settings.attestation_ttl_s,
        nodes={n.cn: n.cluster for n in settings.nodes})
    server.add(add_to_server, ManagerServicer(core), SERVICE_NAME, policy=MANAGER_POLICY)
    return core
