"""Host actions over SSH with Fabric: a connection factory for the lab or an inventory, and
`run` (one command on a host). Shared by the experiments, the deployment and the lab's link
shaping (`edgeferry.lab.links.trial`).

Host keys are checked strictly against the lab's known_hosts (or the inventory's
`UserKnownHostsFile`): an unknown or changed key is refused, never added.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgeferry.errors import ConfigError

_KNOWN_HOSTS_RE = re.compile(r"UserKnownHostsFile=(\S+)")


@dataclass(frozen=True)
class HostAccess:
    name: str
    address: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = None
    groups: tuple[str, ...] = ()


def hosts_from_lab(state: Any) -> dict[str, HostAccess]:
    """HostAccess for every host of a `LabState`."""
    return {
        name: HostAccess(name=name, address=info["address"], key_file=state.private_key,
                         known_hosts=state.known_hosts, groups=(info["role"], info["profile"]))
        for name, info in state.hosts.items()
    }


def _walk_groups(group: str, node: dict[str, Any], out: dict[str, dict[str, Any]],
                 groups: dict[str, list[str]]) -> None:
    for host, hvars in (node.get("hosts") or {}).items():
        out.setdefault(host, {}).update(hvars or {})
        groups.setdefault(host, []).append(group)
    for child, sub in (node.get("children") or {}).items():
        _walk_groups(child, sub or {}, out, groups)


def _group_vars(inventory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    gv = inventory / "group_vars" / "all"
    files = sorted(gv.glob("*.yml")) if gv.is_dir() else []
    if (inventory / "group_vars" / "all.yml").exists():
        files.append(inventory / "group_vars" / "all.yml")
    for f in files:
        merged.update(yaml.safe_load(f.read_text()) or {})
    return merged


def hosts_from_inventory(inventory: Path) -> dict[str, HostAccess]:
    """Read an inventory in the project's shape (hosts.yml + group_vars/all/*.yml)."""
    hosts_file = inventory / "hosts.yml"
    if not hosts_file.exists():
        raise ConfigError(f"inventory {inventory} has no hosts.yml")
    doc = yaml.safe_load(hosts_file.read_text()) or {}
    hvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    _walk_groups("all", doc.get("all") or {}, hvars, groups)
    common = _group_vars(inventory)
    result = {}
    for name, own in hvars.items():
        v = {**common, **own}
        known = _KNOWN_HOSTS_RE.search(str(v.get("ansible_ssh_common_args", "")))
        result[name] = HostAccess(
            name=name,
            address=str(v.get("ansible_host", name)),
            user=str(v.get("ansible_user", "root")),
            port=int(v.get("ansible_port", 22)),
            key_file=v.get("ansible_ssh_private_key_file"),
            known_hosts=known.group(1) if known else None,
            groups=tuple(g for g in groups[name] if g != "all"),
        )
    return result


def connection_factory(hosts: dict[str, HostAccess], *,
                       connect_timeout: int = 10) -> Callable[[str], Any]:
    """host name -> an open-on-demand `fabric.Connection` with strict host-key checking.

    Connections are cached per host; call `.close()` on the returned factory's `close_all`.
    """
    from fabric import Config, Connection
    from paramiko import RejectPolicy

    cache: dict[str, Connection] = {}

    def connect(name: str) -> Connection:
        if name not in hosts:
            raise ConfigError(f"no host named {name!r} in the target (hosts: "
                              f"{', '.join(sorted(hosts))})")
        if name in cache:
            return cache[name]
        access = hosts[name]
        kwargs: dict[str, Any] = {"look_for_keys": False, "allow_agent": False}
        if access.key_file:
            kwargs["key_filename"] = access.key_file
        conn = Connection(access.address, user=access.user, port=access.port,
                          config=Config(overrides={"load_ssh_configs": False}),
                          connect_timeout=connect_timeout, connect_kwargs=kwargs)
        if access.known_hosts:
            conn.client.load_host_keys(access.known_hosts)
        conn.client.set_missing_host_key_policy(RejectPolicy())
        cache[name] = conn
        return conn

    def close_all() -> None:
        for conn in cache.values():
            conn.close()
        cache.clear()

    connect.close_all = close_all  # type: ignore[attr-defined]
    return connect


def run(conn: Any, argv: list[str], *, check: bool = True, timeout: float | None = None) -> str:
    """Run a command (argv, quoted for the remote shell) and return stdout."""
    result = conn.run(shlex.join(argv), hide=True, warn=True, timeout=timeout, in_stream=False)
    if check and result.exited != 0:
        from edgeferry.errors import OperationFailed

        output = (result.stderr or result.stdout).strip()[:300]
        raise OperationFailed(f"{getattr(conn, 'host', '?')}: `{shlex.join(argv)}` failed "
                              f"({result.exited}): {output}")
    return str(result.stdout)
