"""Skip a deploy only when the hosts prove it unnecessary: the deployed-state stamp.

After a successful full deploy (playbooks/site.yml, no tags, no limit, not --check) the
controller computes `inputs_digest`, a SHA-256 over everything the deploy is made from:

* the project files the playbooks, roles and the agents' wheel come from (playbooks/, roles/,
  agents/, edgeferry/, proto/, pyproject.toml, ansible.cfg; git's view of the working tree,
  uncommitted and untracked-but-not-ignored files included, as the wheel is built);
* the inventory folder;
* the controller's PKI folder of the inventory (CA, certificates, keys, CRL: a revocation or a
  renewal changes it) and its state folder (registry passwords), not the manifests and build
  products the deploy writes there;
* the versions of edgeferry and ansible-core.

and has every host record it (playbooks/stamp.yml, role edgeferry_stamp) with the time and a
validity (`VALID_S`, shorter than any rotation period: certificates 30 days, the owner token
7 days, registry passwords 30 days, so a renewal is never skipped for long). site.yml forgets the
stamp first thing, so an interrupted or partial deploy leaves no stamp behind.

Before the next deploy `decide` reads every host's stamp (over SSH, `read_stamps`): the playbook
is skipped only when each host of the inventory holds a stamp with the current digest that has
not expired. A missing host, a host that cannot be read, a re-created host (no stamp), an edit
anywhere in the inputs, or an old stamp all mean: deploy.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeferry import __version__, resources
from edgeferry.deploy.runner import PlaybookResult, inventory_name, run_playbook, strategy_env
from edgeferry.workspace import workspace

#: how long a stamp proves a host up to date (shorter than every rotation period)
VALID_S = 12 * 3600
#: project paths the deploy is made from (relative to the checkout; in an installed wheel,
#: relative to site-packages, where edgeferry/_ansible holds the playbooks, roles, ansible.cfg)
PROJECT_PATHS = ("playbooks", "roles", "agents", "edgeferry", "proto", "pyproject.toml",
                 "ansible.cfg")
#: what the deploy itself writes into the controller's state folder (not an input)
STATE_OUTPUTS = ("manifests", "build")


def stamp_path() -> str:
    """Where hosts keep the stamp (the edgeferry_stamp role's default, one definition)."""
    defaults = resources.roles_dir() / "edgeferry_stamp" / "defaults" / "main.yml"
    doc = yaml.safe_load(defaults.read_text()) or {}
    return str(doc["edgeferry_stamp_path"])


def _project_files(root: Path, git: bool = True) -> list[Path]:
    try:
        if not git:
            raise OSError("an installed package: walk its folders")
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard", "--", *PROJECT_PATHS],
            check=True, capture_output=True, timeout=60).stdout
        names = [n for n in out.decode().split("\0") if n]
        return sorted(root / n for n in names if (root / n).is_file())
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        found: list[Path] = []
        for rel in PROJECT_PATHS:
            base = root / rel
            found += [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()
                                                    and "__pycache__" not in p.parts
                                                    and p.suffix != ".pyc"]
        return sorted(found)


def _tree(folder: Path, skip: Iterable[str] = ()) -> list[Path]:
    if not folder.is_dir():
        return []
    skipped = set(skip)
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.relative_to(folder).parts[0] not in skipped)


def _ansible_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ansible-core")
    except PackageNotFoundError:
        return "unknown"


def inputs_digest(inventory: Path, root: Path | None = None) -> str:
    """SHA-256 over the deploy's inputs (module docstring), as hex.

    `root` (tests) is both the project and the workspace; by default the project is the
    checkout or the installed package (edgeferry/resources.py), the state the workspace's."""
    inventory = Path(inventory)
    name = inventory_name(inventory)
    inv_folder = inventory if inventory.is_dir() else inventory.parent
    if root is None:
        project, git = resources.code_root(), resources.checkout() is not None
        root = workspace()
    else:
        project, git = root, True
    groups = [
        ("project", project, _project_files(project, git)),
        ("inventory", inv_folder, _tree(inv_folder)),
        ("pki", root / ".edgeferry" / "pki" / name, _tree(root / ".edgeferry" / "pki" / name)),
        ("state", root / ".edgeferry" / "state" / name,
         _tree(root / ".edgeferry" / "state" / name, STATE_OUTPUTS)),
    ]
    digest = hashlib.sha256(f"edgeferry {__version__} ansible-core {_ansible_version()}\n"
                            .encode())
    for label, base, files in groups:
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue  # vanished while we read (an editor's temporary file)
            rel = path.relative_to(base).as_posix()
            digest.update(f"{label}:{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest()


def new_stamp(digest: str, now: float | None = None) -> dict[str, Any]:
    """The record hosts keep after a successful full deploy."""
    at = time.time() if now is None else now
    return {"digest": digest, "deployed_at": at, "valid_until": at + VALID_S,
            "edgeferry": __version__}


@dataclass(frozen=True)
class Verdict:
    """Whether the deploy may be skipped, and per host why (not)."""

    skip: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the user."""
        if self.skip:
            return (f"every host ({len(self.reasons)}) holds a current deploy stamp: "
                    "nothing to deploy")
        stale = {h: r for h, r in self.reasons.items() if r != "up to date"}
        return "deploying: " + "; ".join(f"{h}: {r}" for h, r in sorted(stale.items()))


def decide(hosts: Iterable[str], found: Mapping[str, str | None], digest: str,
           now: float | None = None) -> Verdict:
    """Skip only when every host's stamp (its JSON text, None when absent or unreadable)
    carries ``digest`` and is still valid."""
    at = time.time() if now is None else now
    reasons: dict[str, str] = {}
    names = sorted(hosts)
    for host in names:
        text = found.get(host)
        if text is None:
            reasons[host] = "no stamp (never deployed, re-created, or a deploy did not finish)"
            continue
        try:
            stamp = json.loads(text)
            stamped, until = str(stamp["digest"]), float(stamp["valid_until"])
        except (ValueError, KeyError, TypeError):
            reasons[host] = "unreadable stamp"
            continue
        if stamped != digest:
            reasons[host] = "deployed from other inputs"
        elif until <= at:
            reasons[host] = "stamp expired (rotations may be due)"
        else:
            reasons[host] = "up to date"
    skip = bool(names) and all(r == "up to date" for r in reasons.values())
    return Verdict(skip, reasons)


def read_stamps(hosts: Iterable[str], connect: Callable[[str], Any],
                path: str | None = None) -> dict[str, str | None]:
    """Each host's stamp text over SSH (None when it is missing or the host does not answer)."""
    where = path or stamp_path()
    out: dict[str, str | None] = {}
    for host in hosts:
        try:
            # no stdin (under a test runner or a pipe there may be none to read)
            result = connect(host).run(f"cat {where}", hide=True, warn=True, timeout=20,
                                       in_stream=False)
            out[host] = result.stdout if result.ok and result.stdout.strip() else None
        except Exception:  # an unreachable host proves nothing: deploy
            out[host] = None
    return out


@dataclass(frozen=True)
class SiteDeploy:
    """`deploy_site`'s answer: the playbook result (None when skipped) and the verdict."""

    result: PlaybookResult | None
    verdict: Verdict | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when skipped or the playbook succeeded."""
        return self.result is None or self.result.ok


def deploy_site(inventory: Path, *, progress: Callable[[str], None],
                force: bool = False, tags: list[str] | None = None, limit: str | None = None,
                check: bool = False, strategy: str | None = None) -> SiteDeploy:
    """playbooks/site.yml unless every host proves it unnecessary (module docstring); a full
    deploy that succeeds leaves a new stamp on every host. With ``force``, tags, a limit or
    check mode the playbook always runs and no stamp is written (site.yml forgets it).
    `strategy` is the Ansible strategy (`runner.strategy_env`), checked before anything runs."""
    from edgeferry.hosts import connection_factory, hosts_from_inventory

    strategy_env(strategy)  # an unknown name or a missing mitogen fails before any host is read
    started = time.monotonic()
    full = not (tags or limit or check)
    verdict = None
    if full and not force:
        hosts = hosts_from_inventory(Path(inventory))
        connect = connection_factory(hosts)
        try:
            found = read_stamps(hosts, connect)
        finally:
            connect.close_all()  # type: ignore[attr-defined]
        verdict = decide(hosts, found, inputs_digest(inventory))
        progress(verdict.summary())
        if verdict.skip:
            return SiteDeploy(None, verdict, time.monotonic() - started)
    result = run_playbook("site.yml", inventory, tags=tags, limit=limit, check=check,
                          progress=progress, strategy=strategy)
    if result.ok and full:
        record = new_stamp(inputs_digest(inventory))
        stamped = run_playbook("stamp.yml", inventory,
                               extravars={"edgeferry_stamp_record": record}, strategy=strategy)
        if not stamped.ok:  # the deploy stands; only the next one cannot be skipped
            progress(f"could not record the deploy stamp: {stamped.failures[:1]}")
    return SiteDeploy(result, verdict, time.monotonic() - started)


__all__ = ["VALID_S", "SiteDeploy", "Verdict", "decide", "deploy_site", "inputs_digest",
           "new_stamp", "read_stamps", "stamp_path"]
