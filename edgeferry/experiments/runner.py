"""The runner: scenarios checked -> target up -> deploy -> verify -> trials -> JSONL -> report.

Everything that can be refused is refused before the first trial: the definition (schema),
unavailable scenarios, a changed experiment on resume. Trials are appended to the run's
JSONL one by one (fsynced), so an interrupted run resumes where it stopped: `--resume DIR`, or
automatically for the newest unfinished run of the same experiment definition.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgeferry import resources
from edgeferry.deploy.manifest import manifest_path
from edgeferry.errors import ConfigError, OperationFailed
from edgeferry.experiments import logs, provenance, registry
from edgeferry.experiments.matrix import PlannedTrial, expand
from edgeferry.experiments.results import EXPERIMENT_COPY, RunDir
from edgeferry.experiments.scenario import (
    Endpoints,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialResult,
)
from edgeferry.experiments.schema import Experiment, Part, workload_context
from edgeferry.hosts import HostAccess, connection_factory
from edgeferry.workspace import workspace

Log = Callable[[str], None]


@dataclass
class TargetInfo:
    """What the target step produced: lab state and/or inventory and the reachable hosts."""

    lab: Any = None  # edgeferry.lab.state.LabState
    inventory: Path | None = None
    hosts: dict[str, HostAccess] = field(default_factory=dict)
    note: str = ""


class Steps(Protocol):
    """The steps before the trials (the real ones are `edgeferry.experiments.steps`)."""

    def bring_up(self, experiment: Experiment, log: Log) -> TargetInfo: ...

    def deploy(self, experiment: Experiment, target: TargetInfo, log: Log) -> tuple[
        Endpoints, str]: ...

    def verify(self, experiment: Experiment, target: TargetInfo, log: Log) -> dict[str, Any]: ...


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...

    def trial(self, number: int, total: int, trial: PlannedTrial) -> None: ...

    def phase(self, name: str) -> None: ...

    def advance(self) -> None: ...

    def stop(self) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class RunOptions:
    resume: Path | None = None
    new: bool = False  # never resume automatically
    skip_deploy: bool = False
    skip_verify: bool = False
    reports_root: Path | None = None
    repo: Path | None = None  # for the git revision (default: the checkout, if any)


@dataclass
class RunOutcome:
    run_dir: RunDir
    resumed: bool
    trials_run: int
    trials_failed: int
    total: int


def resolve_scenarios(experiment: Experiment) -> dict[str, type[Scenario]]:
    """Import the implementation of every enabled part, or fail naming what is missing."""
    classes: dict[str, type[Scenario]] = {}
    problems: list[str] = []
    for part in experiment.enabled_parts:
        try:
            classes[part.name] = registry.load_scenario(part.scenario)
        except ScenarioUnavailable as err:
            problems.append(f"part {part.name!r}: {err}")
    if problems:
        raise ScenarioUnavailable(
            f"{experiment.source or experiment.name}: cannot run before anything starts: "
            + "; ".join(problems))
    return classes


def _open_run_dir(experiment: Experiment, options: RunOptions,
                  reports_root: Path) -> tuple[RunDir, bool]:
    fingerprint = experiment.fingerprint()
    if options.resume is not None:
        run_dir = RunDir.open(options.resume)
        info = run_dir.read_info()
        if info.get("experiment_fingerprint") != fingerprint:
            raise ConfigError(
                f"{options.resume} was run with a different definition of "
                f"{info.get('experiment')!r}; start a new run (drop --resume)")
        if info.get("status") == "complete":
            raise ConfigError(f"{options.resume} is complete; nothing to resume")
        return run_dir, True
    if not options.new:
        latest = RunDir.latest_unfinished(reports_root, experiment.name, fingerprint)
        if latest is not None:
            return latest, True
    return RunDir.create(reports_root, experiment.name), False


def run_experiment(experiment: Experiment, *, steps: Steps, progress: Progress,
                   options: RunOptions | None = None) -> RunOutcome:
    options = options or RunOptions()
    reports_root = options.reports_root or workspace() / "reports"
    classes = resolve_scenarios(experiment)  # before any side effect
    plan = expand(experiment)
    run_dir, resumed = _open_run_dir(experiment, options, reports_root)
    log = progress.log
    if resumed:
        done_ids = {r["trial_id"] for r in run_dir.read_trials(repair=True)}
        run_dir.rewrite_csv()
        if [t.to_dict() for t in run_dir.read_plan()] != [t.to_dict() for t in plan]:
            raise ConfigError(f"{run_dir.path}: its plan differs from the definition's; "
                              "start a new run")
        log(f"resuming {run_dir.path}: {len(done_ids)} of {len(plan)} trials already recorded")
        run_dir.update_info(status="running", resumed_at=time.time())
    else:
        done_ids = set()
        if experiment.source and Path(experiment.source).exists():
            shutil.copyfile(experiment.source, run_dir.path / EXPERIMENT_COPY)
        run_dir.write_plan(plan)
        run_dir.write_info({
            "experiment": experiment.name,
            "experiment_file": experiment.source,
            "experiment_fingerprint": experiment.fingerprint(),
            "definition": experiment.model_dump(mode="json"),
            "run_id": run_dir.path.name,
            "status": "running",
            "started_at": time.time(),
            "parts": {p.name: {"scenario": p.scenario, "enabled": p.enabled, "note": p.note,
                               "metrics": registry.spec_of(p.scenario).metrics}
                      for p in experiment.parts},
            "provenance": provenance.collect(options.repo or resources.checkout()),
        })
    failed = run = 0
    try:
        with run_dir.timed("target"):
            target = steps.bring_up(experiment, log)
        with run_dir.timed("deploy"):
            if options.skip_deploy:
                known = getattr(steps, "deployed", None)  # endpoints of an earlier deploy
                endpoints = known(experiment, target, log) if known else Endpoints()
                deploy_note = "skipped (--skip-deploy)"
            else:
                endpoints, deploy_note = steps.deploy(experiment, target, log)
        if options.skip_verify:
            checks: dict[str, Any] = {"skipped": "--skip-verify"}
        else:
            with run_dir.timed("verify"):
                checks = steps.verify(experiment, target, log)
        prov = run_dir.read_info()["provenance"]
        prov["lab"] = provenance.lab_facts(target.lab)
        prov["inventory"] = str(target.inventory) if target.inventory else None
        if target.inventory:
            prov["deployed_code"] = provenance.deployed_code(
                manifest_path(target.inventory, "x").parent)
        run_dir.update_info(provenance=prov, steps={
            "target": target.note, "deploy": deploy_note, "verify": checks})
        connect = connection_factory(target.hosts) if target.hosts else None
        progress.start(len(plan), len(done_ids))
        number = len(done_ids)
        try:
            with run_dir.timed("trials"):
                for part in experiment.enabled_parts:
                    todo = [t for t in plan if t.part == part.name and t.trial_id not in done_ids]
                    if not todo:
                        continue
                    ctx = _context(experiment, part, run_dir, target, endpoints, connect, progress)
                    spec = registry.spec_of(part.scenario)
                    scenario = classes[part.name](spec.workload.model_validate(
                        part.workload, context=workload_context(experiment.source)))
                    log(f"part {part.name!r} ({part.scenario}): preparing")
                    scenario.prepare(ctx)
                    try:
                        for trial in todo:
                            number += 1
                            progress.trial(number, len(plan), trial)
                            record = _run_one(scenario, ctx, part, trial)
                            if connect is not None and logs.wanted(experiment.logs,
                                                                   record["outcome"]):
                                progress.phase("collect-logs")
                                record["logs"] = logs.collect(
                                    connect, target.hosts, record["started_at"], time.time(),
                                    run_dir.path / "logs" / trial.trial_id,
                                    relative_to=run_dir.path)
                            run_dir.append_trial(record)
                            run += 1
                            failed += record["outcome"] != "ok"
                            progress.advance()
                    finally:
                        log(f"part {part.name!r}: teardown")
                        scenario.teardown(ctx)
        finally:
            progress.stop()
            if connect is not None:
                connect.close_all()  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        run_dir.update_info(status="interrupted", stopped_at=time.time())
        raise
    except BaseException as err:
        run_dir.update_info(status="failed", stopped_at=time.time(),
                            error=f"{type(err).__name__}: {err}"[:1000])
        raise
    run_dir.update_info(status="complete", finished_at=time.time())
    return RunOutcome(run_dir, resumed, run, failed, len(plan))


def _context(experiment: Experiment, part: Part, run_dir: RunDir, target: TargetInfo,
             endpoints: Endpoints, connect: Any, progress: Progress) -> ScenarioContext:
    work = run_dir.path / "work" / part.name
    work.mkdir(parents=True, exist_ok=True)
    return ScenarioContext(
        experiment=experiment.name, part=part.name, seed=experiment.seed,
        workload=dict(part.workload), run_dir=run_dir.path, work_dir=work, lab=target.lab,
        inventory=target.inventory, endpoints=endpoints, connect=connect,
        progress=progress.phase, log=progress.log)


def _run_one(scenario: Scenario, ctx: ScenarioContext, part: Part,
             trial: PlannedTrial) -> dict[str, Any]:
    spec = registry.spec_of(part.scenario)
    params = spec.params.model_validate(trial.params).model_dump(mode="json")
    started = time.time()
    error = None
    try:
        result = scenario.run_trial(ctx, params)
        if not isinstance(result, TrialResult):
            raise OperationFailed(f"scenario {part.scenario!r} returned {type(result).__name__}, "
                                  "not a TrialResult")
    except (ScenarioUnavailable, KeyboardInterrupt):
        raise
    except Exception as err:  # a failed trial is a result; the run goes on
        error = f"{type(err).__name__}: {err}"[:1000]
        ctx.log(f"trial {trial.trial_id} failed: {error}")
        phases = getattr(err, "phases", None) or []
        result = TrialResult(phases=list(phases),
                             detail={"traceback": traceback.format_exc(limit=5)[-3000:]})
    return {
        "trial_id": trial.trial_id,
        "part": part.name,
        "scenario": part.scenario,
        "index": trial.index,
        "repetition": trial.repetition,
        "warmup": trial.warmup,
        "params": trial.params,
        "resolved_params": params,
        "started_at": started,
        "outcome": "failed" if error else result.outcome,
        "error": error,
        "total_s": result.total_s,
        "total_bytes": result.total_bytes,
        "bandwidth_bps": result.bandwidth_bps,
        "phases": [p.to_dict() for p in result.phases],
        "metrics": result.metrics,
        "detail": result.detail,
    }
