"""The real steps before the trials: target up, deploy (ansible-runner wrapper), verify."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from agents.audit.domain import PolicyError
from edgeferry.auditpolicy import inventory_edge_attributes
from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.experiments import registry
from edgeferry.experiments.runner import Log, TargetInfo
from edgeferry.experiments.scenario import Endpoints, ScenarioUnavailable
from edgeferry.experiments.schema import Experiment
from edgeferry.hosts import connection_factory, hosts_from_inventory, hosts_from_lab
from edgeferry.workspace import workspace


def _uses_hosts(experiment: Experiment) -> bool:
    return any(registry.spec_of(p.scenario).part_uses_hosts(dict(p.workload))
               for p in experiment.enabled_parts)


def _agents(experiment: Experiment) -> list[str]:
    return sorted({agent for p in experiment.enabled_parts
                   for agent in registry.spec_of(p.scenario).part_agents(dict(p.workload))})


def lab_file_of(experiment: Experiment) -> Path | None:
    """The lab target's lab file (relative to the experiment file), if it names one."""
    lab = experiment.target.lab
    if lab is None or not lab.lab_file:
        return None
    path = Path(lab.lab_file)
    if not path.is_absolute() and experiment.source:
        path = Path(experiment.source).parent / path
    return path


def inventory_of(experiment: Experiment) -> Path | None:
    """The inventory target's directory (relative to the workspace)."""
    if experiment.target.inventory is None:
        return None
    inv = Path(experiment.target.inventory)
    return inv if inv.is_absolute() else workspace() / inv


def check_target(experiment: Experiment) -> None:
    """Validate the target before anything starts (`edgeferry run --check` and every run): the
    lab file (hosts, profiles, each edge's seed-002 `audit:` attributes) or the inventory's
    `edgeferry_audit_edge_attributes` of its edge hosts. Raises ConfigError."""
    target = experiment.target
    if target.lab is not None:
        from edgeferry.lab.config import load_spec

        load_spec(lab_file_of(experiment), name=target.lab.name,
                  bandwidth=target.lab.bandwidth, edges=target.lab.edges,
                  edge_profile=target.lab.edge_profile)
        return
    inv = inventory_of(experiment)
    if inv is None or not (inv / "hosts.yml").exists():
        return  # a missing inventory is reported when the run needs it
    edges = [name for name, access in hosts_from_inventory(inv).items()
             if "edge" in access.groups]
    try:
        inventory_edge_attributes(inv, edges)
    except PolicyError as err:
        raise ConfigError(str(err)) from None


class DefaultSteps:
    """Brings up the emulated lab with `edgeferry.lab`, deploys with `edgeferry.deploy` (the
    playbook is skipped when every host's deploy stamp proves it unnecessary, unless
    ``force_deploy``)."""

    def __init__(self, *, force_deploy: bool = False) -> None:
        self.force_deploy = force_deploy

    def bring_up(self, experiment: Experiment, log: Log) -> TargetInfo:
        target = experiment.target
        inv = inventory_of(experiment)
        if inv is not None:
            check_target(experiment)
            return TargetInfo(inventory=inv, hosts=hosts_from_inventory(inv),
                              note=f"inventory {inv}")
        from edgeferry.lab.config import load_spec
        from edgeferry.lab.provider import EmulatedLab
        from edgeferry.lab.state import LabState

        assert target.lab is not None
        spec = load_spec(lab_file_of(experiment), name=target.lab.name,
                         bandwidth=target.lab.bandwidth, edges=target.lab.edges,
                         edge_profile=target.lab.edge_profile)
        if not _uses_hosts(experiment):
            state = LabState.load(spec.name)
            return TargetInfo(lab=state, note="lab not brought up: no enabled part uses hosts"
                              + (" (existing lab state recorded)" if state else ""))
        log(f"bringing up the emulated lab {spec.name!r} (idempotent)")
        result = EmulatedLab(spec, log=log).up()
        for change in result.changes:
            log(f"lab: {change}")
        state = result.state
        return TargetInfo(lab=state, inventory=Path(state.inventory), hosts=hosts_from_lab(state),
                          note=f"emulated lab {spec.name!r}: "
                               + ("; ".join(result.changes) or "up to date"))

    def deploy(self, experiment: Experiment, target: TargetInfo, log: Log) -> tuple[
            Endpoints, str]:
        agents = _agents(experiment)
        if not agents:
            return Endpoints(), "not needed: no enabled part talks to deployed agents"
        try:
            deploy_mod = importlib.import_module("edgeferry.deploy")
        except ModuleNotFoundError:
            raise ScenarioUnavailable(
                f"parts of {experiment.name!r} need the deployed agents ({', '.join(agents)}) "
                "but the deploy step (edgeferry/deploy, issue 3) is not there yet; deploy "
                "by hand and rerun with --skip-deploy") from None
        deploy_fn = getattr(deploy_mod, "deploy_for_experiment", None)
        if deploy_fn is None:
            raise ScenarioUnavailable(
                "edgeferry.deploy has no deploy_for_experiment(inventory, agents, log) -> "
                "Endpoints yet; rerun with --skip-deploy")
        if target.inventory is None:
            raise ConfigError("deploying needs an inventory (an emulated lab or an inventory)")
        log(f"deploying {', '.join(agents)} with Ansible (idempotent)")
        endpoints = deploy_fn(target.inventory, agents, log, force=self.force_deploy)
        return endpoints, f"deployed {', '.join(agents)} to {target.inventory}"

    def deployed(self, experiment: Experiment, target: TargetInfo, log: Log) -> Endpoints:
        """With --skip-deploy: where the agents of an earlier deploy listen (no Ansible run)."""
        agents = _agents(experiment)
        if not agents or target.inventory is None:
            return Endpoints()
        from edgeferry.deploy.experiment import deployed_endpoints

        try:
            return deployed_endpoints(target.inventory, agents)
        except OperationFailed as err:
            log(f"no deployed endpoints known: {err}")
            return Endpoints()

    def verify(self, experiment: Experiment, target: TargetInfo, log: Log) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        if target.hosts:
            connect = connection_factory(target.hosts)
            try:
                for name in sorted(target.hosts):
                    log(f"verifying SSH to {name}")
                    try:
                        res = connect(name).run("uname -m && command -v iperf3 tc", hide=True,
                                                warn=True, in_stream=False)
                    except Exception as err:  # paramiko/socket errors vary
                        raise OperationFailed(f"host {name} is not reachable over SSH: "
                                              f"{type(err).__name__}: {err}") from None
                    lines = res.stdout.split()
                    checks[name] = {"ssh": "ok", "machine": lines[0] if lines else "?",
                                    "tools": lines[1:], "rc": res.exited}
            finally:
                connect.close_all()  # type: ignore[attr-defined]
        from edgeferry.deploy.verify import INFRA_TESTS, run_infra_tests

        if target.inventory is not None and INFRA_TESTS is not None and INFRA_TESTS.is_dir() \
                and _agents(experiment):
            # The same suite and command line as `edgeferry verify` (this interpreter's pytest).
            log(f"running the host verification suite (tests/infra) on {target.inventory}")
            rc, run_dir = run_infra_tests(target.inventory)
            checks["testinfra"] = {"rc": rc, "junit": str(run_dir / "junit.xml")}
            if rc != 0:
                raise OperationFailed(f"host verification failed (rc {rc}); "
                                      f"see {run_dir / 'junit.xml'}")
        else:
            checks["testinfra"] = "not run: no deployed agents to verify" if not \
                _agents(experiment) else ("not run: tests/infra comes with a checkout, not with "
                                          "the installed wheel")
        return checks
