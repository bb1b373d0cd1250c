"""The one place that calls ansible-runner.

Results come from the runner's status, rc, stats and events (never from scraped stdout), and the
runner's artifacts stay in the run folder `.edgeferry/runs/<inventory>/<stamp>-<playbook>/`.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeferry import resources
from edgeferry.errors import ConfigError, EnvironmentProblem
from edgeferry.workspace import state_root, workspace

STATS_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")

ProgressFn = Callable[[str], None]

#: Strategy used when nothing else is asked for: Mitogen's linear strategy (one Python
#: interpreter per host kept over SSH instead of a module upload and interpreter start per task;
#: a forced re-deploy of the default lab took 104 s against 254 s with ansible's own linear).
DEFAULT_STRATEGY = "mitogen_linear"
#: Strategies ansible-core ships (no plugin path needed).
BUILTIN_STRATEGIES = ("linear", "free", "host_pinned", "debug")
STRATEGY_ENV = "EDGEFERRY_ANSIBLE_STRATEGY"


def strategy_env(choice: str | None = None) -> dict[str, str]:
    """Environment that makes ansible-playbook use `choice` (else EDGEFERRY_ANSIBLE_STRATEGY,
    else DEFAULT_STRATEGY).

    A Mitogen strategy (`mitogen_linear`, `mitogen_free`, `mitogen_host_pinned`) needs the
    ansible_mitogen package installed next to ansible; its plugin folder is found from the
    installed package, not from a path in ansible.cfg. `linear` is the switch back to ansible's
    own strategy. Anything else is refused with the list of choices.
    """
    name = (choice or os.environ.get(STRATEGY_ENV) or DEFAULT_STRATEGY).strip()
    if name in BUILTIN_STRATEGIES:
        return {"ANSIBLE_STRATEGY": name}
    if name not in ("mitogen_linear", "mitogen_free", "mitogen_host_pinned"):
        raise ConfigError(
            f"unknown Ansible strategy {name!r} (from {STRATEGY_ENV} or --strategy): choose one "
            f"of {', '.join(BUILTIN_STRATEGIES)}, mitogen_linear, mitogen_free, "
            "mitogen_host_pinned")
    try:
        import ansible_mitogen
    except ImportError:
        raise EnvironmentProblem(
            f"the Ansible strategy {name} needs the mitogen package "
            f"(pip install mitogen), or set {STRATEGY_ENV}=linear") from None
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    if not (plugins / f"{name}.py").is_file():
        raise EnvironmentProblem(
            f"mitogen is installed but has no strategy plugin {plugins / name}.py")
    return {"ANSIBLE_STRATEGY": name, "ANSIBLE_STRATEGY_PLUGINS": str(plugins)}


@dataclass(frozen=True)
class HostRecap:
    """Per-host counters of a playbook run (ansible's PLAY RECAP line)."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @property
    def healthy(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass
class PlaybookResult:
    """What a run produced: status and rc from the runner, recap from its stats, failures from
    its events, and the folder holding the artifacts."""

    playbook: str
    inventory: Path
    status: str
    rc: int
    run_dir: Path
    hosts: dict[str, HostRecap] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    strategy: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def changed_total(self) -> int:
        return sum(h.changed for h in self.hosts.values())


def recap_from_stats(stats: Mapping[str, Any] | None) -> dict[str, HostRecap]:
    """Turn ansible-runner's `stats` ({"ok": {host: n}, ...}) into one HostRecap per host."""
    stats = stats or {}
    hosts: set[str] = set()
    for key in STATS_KEYS:
        hosts.update((stats.get(key) or {}).keys())
    recap = {}
    for host in sorted(hosts):
        def count(key: str, host: str = host) -> int:
            return int((stats.get(key) or {}).get(host, 0))

        recap[host] = HostRecap(
            host=host, ok=count("ok"), changed=count("changed"), failed=count("failures"),
            unreachable=count("dark"), skipped=count("skipped"), rescued=count("rescued"),
            ignored=count("ignored"),
        )
    return recap


def describe_failure(event: Mapping[str, Any]) -> str | None:
    """A one-line description of a failed or unreachable task event, else None."""
    kind = event.get("event")
    if kind not in ("runner_on_failed", "runner_on_unreachable"):
        return None
    data = event.get("event_data") or {}
    if kind == "runner_on_failed" and data.get("ignore_errors"):
        return None
    res = data.get("res") or {}
    msg = str(res.get("msg") or res.get("stderr") or res.get("reason") or "failed").strip()
    item_msgs = [str(r.get("msg", "")).strip() for r in res.get("results") or []
                 if isinstance(r, dict) and r.get("failed")]
    if item_msgs:  # a loop: the per-item messages say what went wrong
        msg = "; ".join(m for m in item_msgs if m) or msg
    msg = " ".join(msg.split())
    what = "unreachable" if kind == "runner_on_unreachable" else "failed"
    return f"{data.get('host', '?')}: {data.get('task', '?')}: {what}: {msg}"


class ProgressReporter:
    """Event handler that reports each play and, when it ends, one line per host."""

    def __init__(self, emit: ProgressFn) -> None:
        self._emit = emit
        self._play: str | None = None
        self._counts: dict[str, dict[str, int]] = {}
        self.failures: list[str] = []

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._close_play()
            self._play = str(data.get("play") or data.get("name") or "play")
            self._emit(f"▶ {self._play}")
        elif kind.startswith("runner_on_") and "host" in data:
            if kind == "runner_on_start":
                return True
            counts = self._counts.setdefault(data["host"], {"ok": 0, "changed": 0, "failed": 0})
            if kind == "runner_on_ok":
                counts["changed" if (data.get("res") or {}).get("changed") else "ok"] += 1
            failure = describe_failure(event)
            if failure:
                counts["failed"] += 1
                self.failures.append(failure)
                self._emit(f"  ✗ {failure}")
        elif kind == "playbook_on_stats":
            self._close_play()
        return True

    def _close_play(self) -> None:
        for host, c in sorted(self._counts.items()):
            self._emit(f"  {host}: ok={c['ok']} changed={c['changed']} failed={c['failed']}")
        self._counts = {}


def resolve_inventory(inventory: str | os.PathLike[str] | None) -> Path:
    """The inventory folder or file to use (default: the emulated lab's `inventory/lab` in the
    workspace). A relative path is looked up in the current directory, then the workspace, then
    among the shipped files (`inventory/example-hardware`)."""
    path = Path(inventory) if inventory else workspace() / "inventory" / "lab"
    if not path.is_absolute():
        for base in (Path.cwd(), workspace(), resources.shipped_root()):
            if (base / path).exists():
                path = base / path
                break
        else:
            path = Path.cwd() / path
    if not path.exists():
        raise ConfigError(
            f"inventory {path} does not exist; run `edgeferry lab up` or pass -i inventory/<lab>"
        )
    if path.is_dir() and not any(path.glob("hosts.y*ml")) and not any(path.glob("*.ini")):
        raise ConfigError(f"inventory {path} has no hosts.yml; pass the folder that holds it")
    return path.resolve()


def inventory_name(inventory: Path) -> str:
    """The name the controller files an inventory's runs, keys and state under: its folder's
    (Ansible's ``inventory_dir | basename``, the roles' edgeferry_inventory_name)."""
    return inventory.name if inventory.is_dir() else inventory.parent.name


def new_run_dir(inventory: Path, playbook: str, base: Path | None = None) -> Path:
    """A fresh run folder under `<workspace>/.edgeferry/runs/<inventory>/` (kept after the
    run)."""
    name = inventory_name(inventory)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    root = (base or state_root() / "runs") / name
    run_dir = root / f"{stamp}-{Path(playbook).stem}"
    run_dir.mkdir(parents=True, mode=0o700)
    return run_dir


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    tags: list[str] | None = None,
    limit: str | None = None,
    check: bool = False,
    extravars: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    run_dir: Path | None = None,
    runner_run: Callable[..., Any] | None = None,
    strategy: str | None = None,
) -> PlaybookResult:
    """Run the shipped `playbooks/<playbook>` against `inventory` and return its result.

    The controller's state (keys, CA, manifests, wheels) goes to `<workspace>/.edgeferry`
    (EDGEFERRY_CONTROLLER_DIR, read by the edgeferry role's defaults), never into the package.

    `strategy` picks the Ansible strategy (see `strategy_env`); the result records it.
    `runner_run` exists for unit tests; everything else uses ansible_runner.run.
    """
    playbook_dir = resources.playbook_dir()
    playbook_path = playbook_dir / playbook
    if not playbook_path.is_file():
        raise ConfigError(f"playbook {playbook_path} does not exist")
    if runner_run is None:
        try:
            import ansible_runner
        except ImportError as err:  # pragma: no cover - a broken install
            raise EnvironmentProblem(f"ansible-runner is not installed ({err})") from None
        runner_run = ansible_runner.run
    run_dir = run_dir or new_run_dir(inventory, playbook)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    reporter = ProgressReporter(progress or (lambda _line: None))
    cmdline = []
    if tags:
        cmdline += ["--tags", ",".join(tags)]
    if check:
        cmdline.append("--check")
    bin_dir = str(Path(sys.executable).parent)  # ansible-playbook next to this interpreter
    envvars = {
        "ANSIBLE_CONFIG": str(resources.ansible_cfg()),
        "ANSIBLE_ROLES_PATH": str(resources.roles_dir()),
        "EDGEFERRY_CONTROLLER_DIR": str(state_root()),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    envvars.update(strategy_env(strategy))
    runner = runner_run(
        private_data_dir=str(run_dir),
        project_dir=str(playbook_dir),
        playbook=str(playbook_path),
        inventory=str(inventory),
        limit=limit,
        cmdline=" ".join(cmdline) or None,
        extravars=dict(extravars or {}),
        envvars=envvars,
        event_handler=reporter,
        quiet=True,
        json_mode=False,
        rotate_artifacts=0,
        timeout=None,
    )
    return PlaybookResult(
        playbook=playbook,
        inventory=inventory,
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else 1),
        run_dir=run_dir,
        hosts=recap_from_stats(runner.stats),
        failures=reporter.failures,
        strategy=envvars["ANSIBLE_STRATEGY"],
    )
