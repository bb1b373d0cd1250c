"""Wiring of the audit agent: settings, store, audit log, owner verifier, monitor, servicer."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agents.audit.auditlog import AuditLog, AuditLogError
from agents.audit.monitor import DEFAULT_INTERVAL_S, EdgeMonitor, NodeProbe
from agents.audit.nodeprobe import DEFAULT_NODE_PORT, GrpcNodeProbe
from agents.audit.owners import NoOwnerVerifier, OwnerVerifier, SealedTokenVerifier
from agents.audit.policy import AUDIT_POLICY
from agents.audit.service import AuditService
from agents.audit.servicer import SERVICE_NAME, AuditServicer, add_to_server
from agents.audit.store import AuditStore
from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentStartError
from agents.common.server import AgentServer
from agents.common.store import Store


class AuditSettings(BaseModel):
    """``settings:`` of the audit agent's configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Key file (0600, >= 32 bytes) shared with the SMF to verify sealed owner tokens.
    #: Absent: every owner-scoped request is refused.
    owner_token_key: Path | None = None
    #: Audit log and its HMAC key (default: in data_dir). Keep the key off the log's volume.
    audit_log: Path | None = None
    audit_log_key: Path | None = None
    #: Seed of the agent's RNG for the region / any-edge try order (None: OS randomness).
    seed: int | None = None
    #: Poll the registered edges' node agents (GetResources, DescribeWorkload) over mTLS.
    #: Off: utilisation comes only from ReportEdgeState (the controller, the node agents).
    monitor: bool = False
    #: How often the monitor polls node agents (paper: 600 s).
    monitor_interval_s: float = Field(default=DEFAULT_INTERVAL_S, gt=0)
    #: Deadline of each node-agent call of a poll, seconds.
    monitor_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: Node agent port for edges registered with a bare host address.
    node_port: int = Field(default=DEFAULT_NODE_PORT, ge=1, le=65535)
    #: Edge name -> node agent host:port, overriding the registered address.
    node_addresses: dict[str, str] = Field(default_factory=dict, max_length=10_000)
    #: Observations older than this are stale (default: twice the interval).
    max_state_age_s: float | None = Field(default=None, gt=0)


def build_service(config: AgentConfig, verifier: OwnerVerifier | None = None
                  ) -> tuple[AuditService, AuditSettings]:
    """Open the store and the audit log of ``config`` and build the service."""
    settings = config.settings_as(AuditSettings)
    data = config.resolved_data_dir
    if verifier is None:
        if settings.owner_token_key is None:
            verifier = NoOwnerVerifier()
        else:
            try:
                verifier = SealedTokenVerifier.from_file(settings.owner_token_key)
            except (OSError, ValueError) as err:
                raise AgentStartError(f"owner_token_key: {err}") from None
    try:
        log = AuditLog.open(settings.audit_log or data / "audit.jsonl",
                            settings.audit_log_key or data / "audit-log.key")
    except (AuditLogError, OSError) as err:
        raise AgentStartError(str(err)) from None
    store = AuditStore(Store.open(data / "audit.sqlite3"))
    max_age = settings.max_state_age_s or 2 * settings.monitor_interval_s
    service = AuditService(store, log, verifier, seed=settings.seed, max_state_age=max_age)
    return service, settings


def setup_audit(server: AgentServer, config: AgentConfig, *,
                verifier: OwnerVerifier | None = None,
                probe: NodeProbe | None = None) -> AuditService:
    """Register the audit servicer on ``server``; start the monitor when a probe is given or
    ``settings.monitor`` is on (then it polls the node agents over mTLS with the agent's own
    certificate, role ``audit``)."""
    service, settings = build_service(config, verifier)
    server.add(add_to_server, AuditServicer(service), SERVICE_NAME, policy=AUDIT_POLICY)
    if probe is None and settings.monitor:
        tls = config.tls
        if tls is None:
            raise AgentStartError("settings.monitor needs tls (the node agents require mTLS)")
        grpc_probe = GrpcNodeProbe(lambda address: secure_channel_from_config(tls, address),
                                   node_addresses=settings.node_addresses,
                                   node_port=settings.node_port,
                                   timeout_s=settings.monitor_timeout_s)
        server.on_stop(grpc_probe.close)
        probe = grpc_probe
    if probe is not None:
        monitor = EdgeMonitor(service, probe, interval_s=settings.monitor_interval_s)
        monitor.start()
        server.on_stop(monitor.stop)
    server.on_stop(service.log.close)
    server.on_stop(service.store.store.close)
    return service
