"""What the edgeferry_agent role deployed, read from the manifests it hands the controller.

On every host the role writes the deployment manifest ``/etc/edgeferry/agents.json`` and, once
the agents listen, the same JSON to ``.edgeferry/state/<inventory>/manifests/<host>.json`` on
the controller (``roles/edgeferry_agent/tasks/manifest.yml`` and ``manifest_to_controller.yml``).
Each deployed agent instance in it carries its rendered ``settings`` (those of its
``/etc/edgeferry/<instance>.yaml``), and the manifest names the container owner whose sealed
token the SMF presents to the audit agent. The controller reads these, instead of keeping its
own copies of the agent catalog (``roles/edgeferry/defaults/main.yml``):

* `HostManifest.workloads`: how each service's container runs (the SMF's
  ``settings.container.workloads``);
* `HostManifest.rasp_maximum`: a node agent's RASP MAX (``settings.rasp_endpoint.maximum``);
* `HostManifest.container_owner`: the owner name sealed in the SMF's token;
* `ui_urls`: where the UI server (the HTTPS instance ``ui``) answers, for ``lab status``;
* `HostManifest.python`: the deployed agents' interpreter (``<venv>/bin/python``, the role's
  ``edgeferry_agent_venv``), for what the controller runs on a host with the agents' code.

Settings name secret files by path only; their contents are never in a manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from edgeferry.deploy.runner import inventory_name
from edgeferry.errors import OperationFailed
from edgeferry.workspace import workspace

#: What a deployed instance serves (its catalog entry's ``protocol``; gRPC when absent).
PROTOCOLS = ("grpc", "https")
#: The UI server's instance name in the agent catalog (roles/edgeferry/defaults/main.yml).
UI_INSTANCE = "ui"
#: The resources of a RASP MAX (millicores, MiB, MiB, Mbit/s), as the node agent's settings.
RESOURCES = ("cpu", "memory", "storage", "network")


class ManifestError(OperationFailed):
    """A deployment manifest is missing (nothing deployed yet) or lacks what the controller
    needs (written by an older role, or hand-edited)."""


@dataclass(frozen=True)
class SecretMount:
    """A secret file the SMF hands a workload: read from ``path`` on the SMF host, written to
    ``container_path`` in the container, owned by ``uid``."""

    container_path: str
    path: PurePosixPath
    uid: int


@dataclass(frozen=True)
class Workload:
    """How a service's container runs (one entry of the SMF's settings.container.workloads)."""

    service: str  # the service (application type) the entry is for
    name: str  # the container's name (``workload``)
    container_port: int
    secrets: tuple[SecretMount, ...] = ()


@dataclass(frozen=True)
class DeployedAgent:
    """One agent instance of a host's manifest: where it listens and its rendered settings."""

    host: str
    name: str
    address: str
    port: int
    settings: Mapping[str, Any]
    manifest: Path
    protocol: str = "grpc"  # what it serves: gRPC over mTLS, or HTTPS (the UI server)

    @property
    def url(self) -> str:
        """``https://<address>:<port>/`` of an HTTPS instance (the UI server)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}/"

    def setting(self, *keys: str) -> Any:
        """``settings[keys[0]][keys[1]]...``; a ManifestError names what is missing."""
        node: Any = self.settings
        for depth, key in enumerate(keys):
            if not isinstance(node, Mapping) or key not in node:
                where = ".".join(("settings", *keys[:depth + 1]))
                raise ManifestError(f"the manifest of host {self.host!r} ({self.manifest}) lacks "
                                    f"{where} of agent {self.name!r}; deploy again")
            node = node[key]
        return node


@dataclass(frozen=True)
class HostManifest:
    """The deployment manifest of one host, as the edgeferry_agent role wrote it."""

    host: str
    path: Path
    container_owner: str
    agents: Mapping[str, DeployedAgent]
    venv: PurePosixPath | None = None  # the agents' virtualenv; None: not in the manifest

    def python(self) -> PurePosixPath:
        """The deployed agents' interpreter, ``<venv>/bin/python``; a ManifestError when the
        manifest names no venv."""
        if self.venv is None:
            raise ManifestError(f"the manifest of host {self.host!r} ({self.path}) lacks 'venv' "
                                "(written by an older edgeferry_agent role?); deploy again")
        return self.venv / "bin" / "python"

    def agent(self, name: str) -> DeployedAgent:
        """The deployed instance ``name``; a ManifestError when it is not deployed here."""
        if name not in self.agents:
            deployed = ", ".join(self.agents) or "none"
            raise ManifestError(f"the manifest of host {self.host!r} ({self.path}) lacks agent "
                                f"{name!r} (deployed there: {deployed}); place it on the host "
                                "(edgeferry_agent_placement) and deploy again")
        return self.agents[name]

    def rasp_maximum(self) -> dict[str, int]:
        """The node agent's RASP MAX (settings.rasp_endpoint.maximum): resource -> amount."""
        node = self.agent("node")
        maximum = node.setting("rasp_endpoint", "maximum")
        if not isinstance(maximum, Mapping):
            raise self._bad("node", "settings.rasp_endpoint.maximum", "is not a mapping")
        out: dict[str, int] = {}
        for key, value in maximum.items():
            if key not in RESOURCES or not _is_count(value):
                raise self._bad("node", f"settings.rasp_endpoint.maximum.{key}",
                                f"= {value!r} is not one of {', '.join(RESOURCES)} "
                                "with a non-negative integer")
            out[key] = value
        return out

    def workloads(self) -> dict[str, Workload]:
        """How each service's container runs: service -> Workload, from the SMF's settings
        (settings.container.workloads)."""
        table = self.agent("smf").setting("container", "workloads")
        if not isinstance(table, Mapping):
            raise self._bad("smf", "settings.container.workloads", "is not a mapping")
        return {str(service): self._workload(str(service), entry)
                for service, entry in table.items()}

    def _workload(self, service: str, entry: Any) -> Workload:
        where = f"settings.container.workloads.{service}"
        if not isinstance(entry, Mapping):
            raise self._bad("smf", where, "is not a mapping")
        name = entry.get("workload")
        port = entry.get("container_port")
        if not isinstance(name, str) or not name:
            raise self._bad("smf", f"{where}.workload", "is missing or not a name")
        if not _is_count(port) or not 1 <= port <= 65535:
            raise self._bad("smf", f"{where}.container_port", "is missing or not a port")
        mounts = []
        for i, secret in enumerate(entry.get("secrets") or []):
            at = f"{where}.secrets[{i}]"
            if not isinstance(secret, Mapping):
                raise self._bad("smf", at, "is not a mapping")
            container_path, path, uid = (secret.get(k) for k in ("container_path", "path", "uid"))
            if not isinstance(container_path, str) or not container_path.startswith("/"):
                raise self._bad("smf", f"{at}.container_path", "is missing or not absolute")
            if not isinstance(path, str) or not path:
                raise self._bad("smf", f"{at}.path", "is missing")
            if not _is_count(uid):
                raise self._bad("smf", f"{at}.uid", "is missing or not a uid")
            mounts.append(SecretMount(container_path, PurePosixPath(path), uid))
        return Workload(service, name, port, tuple(mounts))

    def _bad(self, agent: str, where: str, problem: str) -> ManifestError:
        return ManifestError(f"the manifest of host {self.host!r} ({self.path}): {where} of "
                             f"agent {agent!r} {problem}; fix the agent catalog and deploy again")


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def manifest_path(inventory: Path, host: str, root: Path | None = None) -> Path:
    """Where the role puts the controller's copy of ``host``'s manifest (under `root`,
    default: the workspace)."""
    state = (root or workspace()) / ".edgeferry" / "state" / inventory_name(Path(inventory))
    return state / "manifests" / f"{host}.json"


def load_manifest(inventory: Path, host: str, root: Path | None = None) -> HostManifest:
    """The manifest of ``host`` from the controller's copy; a ManifestError says to deploy
    when there is none, and what is wrong with one that is broken."""
    path = manifest_path(inventory, host, root)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"no deployment manifest of host {host!r} ({path}): deploy first "
                            f"(`edgeferry deploy -i {inventory}`, or `edgeferry run` without "
                            "--skip-deploy)") from None
    return parse_manifest(text, path, host)


def parse_manifest(text: str, path: Path, host: str) -> HostManifest:
    """A HostManifest from the JSON the role wrote (``path`` and ``host`` name it in errors)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ManifestError(f"the manifest of host {host!r} ({path}) is not JSON ({err}); "
                            "deploy again") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"the manifest of host {host!r} ({path}) is not a JSON object; "
                            "deploy again")
    for key in ("host", "container_owner", "agents"):
        if key not in doc:
            raise ManifestError(f"the manifest of host {host!r} ({path}) lacks {key!r} "
                                "(written by an older edgeferry_agent role?); deploy again")
    if doc["host"] != host:
        raise ManifestError(f"{path} is the manifest of host {doc['host']!r}, not {host!r}")
    owner = doc["container_owner"]
    if not isinstance(owner, str) or not owner:
        raise ManifestError(f"the manifest of host {host!r} ({path}): container_owner is empty")
    if not isinstance(doc["agents"], list):
        raise ManifestError(f"the manifest of host {host!r} ({path}): agents is not a list")
    venv = doc.get("venv")
    if venv is not None and (not isinstance(venv, str) or not venv.startswith("/")):
        raise ManifestError(f"the manifest of host {host!r} ({path}): venv {venv!r} is not an "
                            "absolute path; deploy again")
    agents: dict[str, DeployedAgent] = {}
    for i, entry in enumerate(doc["agents"]):
        agent = _agent(entry, host, path, i)
        agents[agent.name] = agent
    return HostManifest(host=host, path=path, container_owner=owner, agents=agents,
                        venv=PurePosixPath(venv) if venv is not None else None)


def _agent(entry: Any, host: str, path: Path, index: int) -> DeployedAgent:
    what = f"the manifest of host {host!r} ({path}): agents[{index}]"
    if not isinstance(entry, dict):
        raise ManifestError(f"{what} is not an object; deploy again")
    for key in ("name", "address", "port", "settings"):
        if key not in entry:
            raise ManifestError(f"{what} lacks {key!r} (written by an older edgeferry_agent "
                                "role?); deploy again")
    name, address, port, settings = (entry[k] for k in ("name", "address", "port", "settings"))
    if not isinstance(name, str) or not isinstance(address, str):
        raise ManifestError(f"{what}: name and address must be strings; deploy again")
    if not _is_count(port) or not 1 <= port <= 65535:
        raise ManifestError(f"{what} ({name}): port {port!r} is not a port; deploy again")
    if not isinstance(settings, dict):
        raise ManifestError(f"{what} ({name}): settings is not an object; deploy again")
    protocol = entry.get("protocol", "grpc")  # older manifests: every agent spoke gRPC
    if protocol not in PROTOCOLS:
        raise ManifestError(f"{what} ({name}): protocol {protocol!r} is not one of "
                            f"{', '.join(PROTOCOLS)}; deploy again")
    return DeployedAgent(host=host, name=name, address=address, port=port, settings=settings,
                         manifest=path, protocol=protocol)


def ui_urls(inventory: Path, root: Path | None = None) -> dict[str, str]:
    """host -> URL of the UI server (the HTTPS instance ``ui``) deployed there, from the
    controller's manifests of ``inventory``; empty when none is deployed (or nothing is yet).
    A manifest that does not parse is passed over (`load_manifest` says what is wrong)."""
    folder = manifest_path(inventory, "x", root).parent
    urls: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            manifest = parse_manifest(path.read_text(), path, path.stem)
        except (OSError, ManifestError):
            continue
        agent = manifest.agents.get(UI_INSTANCE)
        if agent is not None and agent.protocol == "https":
            urls[manifest.host] = agent.url
    return urls
