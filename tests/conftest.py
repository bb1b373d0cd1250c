"""Shared fixtures: a lab PKI on disk and helpers to run real agent servers on 127.0.0.1.

``lab_pki`` (session scope) gives a lab CA with certificates for a localhost agent and a
controller client, plus a foreign CA whose certificates must be refused::

    def test_x(lab_pki, agent_config):
        server = AgentServer(agent_config(name="ras"))
        ...
        channel = lab_pki.channel(server.port)          # mTLS as "controller"
"""

from __future__ import annotations

import logging
import os

# gRPC's core logs every refused TLS handshake at INFO; the suites refuse hundreds on purpose
# (set GRPC_VERBOSITY yourself to see them). Read when grpc initialises, so before its import.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import settings as hypothesis_settings

from agents.common.client import secure_channel
from agents.common.config import AgentConfig, TLSConfig, load_config
from agents.common.server import AgentServer
from edgeferry.pki import IssuedCert, LabCA

# Property tests draw the same examples on every run, so a CI run is reproducible; set
# HYPOTHESIS_PROFILE=explore to draw fresh random examples (and keep any failure as a test).
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

LOCAL_DNS = ("localhost",)
LOCAL_IPS = ("127.0.0.1", "::1")


@dataclass
class LabPKI:
    """Certificates for tests. ``server``/``client`` come from ``ca``; ``foreign_*`` do not."""

    root: Path
    ca: LabCA
    server: IssuedCert  # CN "bare.localhost", SANs localhost/127.0.0.1/::1, server+clientAuth
    client: IssuedCert  # CN "controller", clientAuth only
    foreign_ca: LabCA
    foreign_client: IssuedCert  # CN "controller" too, but issued by the foreign CA
    foreign_server: IssuedCert  # CN "bare.localhost", localhost SANs, foreign CA
    _extra: dict[tuple[str, bool, bool], IssuedCert] = field(default_factory=dict)

    def issue(self, name: str, *, server: bool = True, client: bool = True) -> IssuedCert:
        """Another certificate from the lab CA, valid for localhost; cached by name *and*
        purposes, each purpose set in a folder of its own (a client-only "smf.control" one test
        asked for must never be the server certificate another test's SMF presents)."""
        key = (name, server, client)
        if key not in self._extra:
            folder = "issued" if server and client else (
                f"issued-{'server' if server else ''}{'client' if client else ''}-only")
            self._extra[key] = self.ca.issue(
                name,
                self.root / folder,
                dns_names=LOCAL_DNS if server else (),
                ip_addresses=LOCAL_IPS if server else (),
                server=server,
                client=client,
            )
        return self._extra[key]

    def tls_overrides(self, cn: str) -> dict[str, str]:
        """Config overrides (``agent_config(**...)``) serving with a certificate of CN `cn`
        (role-shaped, e.g. ``ledger-peer.edge1``: agents.common.authz reads the role from it)."""
        issued = self.issue(cn)
        return {"tls.cert": str(issued.cert_path), "tls.key": str(issued.key_path)}

    def channel_as(self, port: int, cn: str) -> grpc.Channel:
        """An mTLS channel to a local agent presenting a certificate of CN `cn`."""
        return self.channel(port, self.client if cn == "controller" else self.issue(cn))

    def tls_config(self, issued: IssuedCert | None = None) -> TLSConfig:
        """TLSConfig for an agent serving with ``issued`` (default: ``server``)."""
        issued = issued or self.server
        return TLSConfig(ca_cert=self.ca.cert_path, cert=issued.cert_path, key=issued.key_path)

    def channel(
        self, port: int, issued: IssuedCert | None = None, host: str = "127.0.0.1"
    ) -> grpc.Channel:
        """An mTLS channel to a local agent as ``issued`` (default: the controller client)."""
        issued = issued or self.client
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return secure_channel(target, self.ca.cert_path, issued.cert_path, issued.key_path)


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    root = tmp_path_factory.mktemp("pki")
    ca = LabCA.create(root / "ca")
    issued = root / "issued"
    foreign_ca = LabCA.create(root / "foreign-ca", "foreign CA")
    foreign = root / "foreign"
    return LabPKI(
        root=root,
        ca=ca,
        server=ca.issue("bare.localhost", issued, dns_names=LOCAL_DNS, ip_addresses=LOCAL_IPS),
        client=ca.issue_client("controller", issued),
        foreign_ca=foreign_ca,
        foreign_client=foreign_ca.issue_client("controller", foreign),
        foreign_server=foreign_ca.issue(
            "bare.localhost", foreign, dns_names=LOCAL_DNS, ip_addresses=LOCAL_IPS
        ),
    )


@pytest.fixture
def agent_config(lab_pki: LabPKI, tmp_path: Path) -> Callable[..., AgentConfig]:
    """Factory: ``agent_config(name="ras", **overrides)`` -> an mTLS config on 127.0.0.1:0.

    Overrides are dotted keys as in ``load_config`` (e.g. ``**{"settings.ttl": 5}``); pass
    ``tls=None`` for a config without TLS material.
    """

    def make(name: str = "testagent", **overrides: Any) -> AgentConfig:
        tls = lab_pki.tls_config()
        defaults: dict[str, Any] = {
            "name": name,
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "data_dir": str(tmp_path / "data" / name),
            "grace_seconds": 1.0,
            "tls.ca_cert": str(tls.ca_cert),
            "tls.cert": str(tls.cert),
            "tls.key": str(tls.key),
        }
        if "tls" in overrides and overrides["tls"] is None:
            overrides.pop("tls")
            defaults = {k: v for k, v in defaults.items() if not k.startswith("tls.")}
        return load_config(None, overrides, defaults=defaults)

    return make


@pytest.fixture
def run_agent_server() -> Iterator[Callable[..., AgentServer]]:
    """Factory: ``run_agent_server(config, setup=None)`` starts a server, stopped after the test."""
    started: list[AgentServer] = []

    def start(
        config: AgentConfig, setup: Callable[[AgentServer], None] | None = None
    ) -> AgentServer:
        server = AgentServer(config)
        if setup is not None:
            setup(server)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(0)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Use around code that calls ``configure_logging`` (process-wide): restores the loggers."""
    saved = {}
    for name in ("edgeferry", "grpc"):
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


# --- parallel runs --------------------------------------------------------------------------
# `./edgeferry.sh test` runs the suite in pytest-xdist workers with `--dist loadgroup
# --no-loadscope-reorder`. Each test module is one unit of work (its module-scoped fixtures, its
# container names and its engine state are set up once, on one worker), and every test that uses
# the shared deployed lab (tests/integration/conftest.py) is in one group, so that lab is brought
# up and deployed once. Under xdist the units are queued heaviest first: the shared lab, the
# other lab tests, the Docker tests, then the rest, so the long lab chain starts at once and
# the short units fill the other workers around it.
SHARED_LAB_GROUP = "shared-lab"
SHARED_LAB_FIXTURES = frozenset({"deployed_lab", "deployed_lab_file"})


def work_group(item: pytest.Item) -> str:
    """The xdist group of a test: the shared lab's, else its module's."""
    if SHARED_LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
        return SHARED_LAB_GROUP
    return item.nodeid.split("::", 1)[0]


def queue_rank(item: pytest.Item) -> int:
    """0 for the shared lab's tests, 1 other lab tests, 2 Docker tests, 3 the rest."""
    if work_group(item) == SHARED_LAB_GROUP:
        return 0
    if item.get_closest_marker("lab"):
        return 1
    return 2 if item.get_closest_marker("docker") else 3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group (and, in an xdist worker, order) the collected tests; see the comment above."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(work_group(item)))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=queue_rank)  # stable: each group keeps its collection order
