"""Wiring of the UI server: settings, its SQLite database, the audit/SMF clients, the app.

Configuration is an agent config file (``agents.common.config``: ``listen_host``,
``listen_port``, ``tls`` with the lab CA, the UI's certificate ``ui.<host>`` and its key,
``data_dir``) with these ``settings``::

    settings:
      audit_address: 10.10.0.5:50061        # the audit agent (mTLS, as role ui)
      audit_server_name: audit.control       # optional: name checked against its certificate
      owner_token_key: /etc/edgeferry/owner-token.key   # shared with the audit agent (0600)
      smf:                                    # optional: migrations through the SMF
        address: 10.10.0.5:50051
        services:                             # container name -> SMF service and capabilities
          App1: {service_id: ..., user_id: ..., device_id: ...,
                 user_cap_file: ..., device_cap_file: ...}

The HTTPS certificate is ``tls.cert`` (from the lab CA, or one the operator provides with
``settings.https_cert`` / ``settings.https_key``); browsers need the lab CA imported, or the
operator's certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agents.audit.client import AuditClient
from agents.audit.convert import read_key_file
from agents.common.client import secure_channel_from_config
from agents.common.config import AgentConfig
from agents.common.errors import AgentStartError
from agents.common.store import Store
from agents.ui.accounts import Accounts
from agents.ui.backend import GrpcBackend, SmfBinding, read_binding
from agents.ui.migrations import Changes, Migrations
from agents.ui.portal import Backend, Portal
from agents.ui.web import UiState


class SmfServiceBinding(BaseModel):
    """One container's SMF service and the caller's capabilities (files, 0600)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    device_id: str = Field(min_length=1, max_length=128)
    user_cap_file: Path
    device_cap_file: Path


class SmfSettings(BaseModel):
    """Where the SMF is and which containers it knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    server_name: str | None = None
    services: dict[str, SmfServiceBinding] = Field(default_factory=dict)


class UiSettings(BaseModel):
    """``settings:`` of the UI server's configuration file (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    audit_address: str
    audit_server_name: str | None = None
    owner_token_key: Path
    smf: SmfSettings | None = None
    https_cert: Path | None = None
    https_key: Path | None = None
    session_ttl_s: float = Field(default=8 * 3600, gt=0)
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_s: float = Field(default=300.0, gt=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0)


@dataclass
class UiServer:
    """The built server: its state (for the app) and what to close."""

    state: UiState
    store: Store
    certfile: Path
    keyfile: Path

    def close(self) -> None:
        """Close the database."""
        self.store.close()


def build_state(store: Store, backend: Backend, settings: UiSettings) -> UiState:
    """The app's state over an open database and a backend."""
    accounts = Accounts(store, session_ttl_s=settings.session_ttl_s,
                        max_failures=settings.max_failed_logins, lockout_s=settings.lockout_s)
    portal = Portal(backend, store)
    changes = Changes()
    return UiState(accounts, portal, Migrations(portal, changes), changes)


def build_server(config: AgentConfig) -> UiServer:
    """Open the database, connect to the audit agent (and the SMF), build the state."""
    settings = config.settings_as(UiSettings)
    if config.tls is None:
        raise AgentStartError("the UI server needs tls (lab CA, its certificate and key)")
    try:
        owner_key = read_key_file(settings.owner_token_key)
    except (OSError, ValueError) as err:
        raise AgentStartError(f"settings.owner_token_key: {err}") from None
    audit = AuditClient(secure_channel_from_config(
        config.tls, settings.audit_address, settings.audit_server_name),
        timeout=settings.rpc_timeout_s)
    smf = None
    bindings: dict[str, SmfBinding] = {}
    if settings.smf is not None:
        from agents.smf.client import SmfClient

        smf = SmfClient(secure_channel_from_config(config.tls, settings.smf.address,
                                                   settings.smf.server_name),
                        timeout=max(settings.rpc_timeout_s, 120.0))
        try:
            bindings = {name: read_binding(b.service_id, b.user_id, b.device_id,
                                           b.user_cap_file, b.device_cap_file)
                        for name, b in settings.smf.services.items()}
        except OSError as err:
            raise AgentStartError(f"settings.smf.services: {err}") from None
    store = Store.open(config.resolved_data_dir / "ui.sqlite3")
    state = build_state(store, GrpcBackend(audit, owner_key, smf=smf, bindings=bindings),
                        settings)
    return UiServer(state, store, settings.https_cert or config.tls.cert,
                    settings.https_key or config.tls.key)
