"""A small run directory written by the project's own results writer (RunDir.append_trial),
with raw values the tests know, so expectations are computed from them independently."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from edgeferry.experiments.results import RunDir

PHASES = ("push", "start")
MIGRATE_PARAMS = [{"size_mb": 1, "mode": "a"}, {"size_mb": 8, "mode": "a"},
                  {"size_mb": 8, "mode": "b"}]
PROBE_PARAMS = [{"nodes": 3, "hosts": ["edge1", "edge2"]}]
REPETITIONS = 5


def info(experiment: str = "fx") -> dict[str, Any]:
    return {
        "experiment": experiment, "experiment_file": f"{experiment}.yaml",
        "experiment_fingerprint": "f" * 16, "run_id": "r", "status": "complete",
        "started_at": 1_700_000_000.0, "provenance": {},
        "parts": {"migrate": {"scenario": "fake", "enabled": True, "note": "",
                              "metrics": {"score": "ratio", "rate": "bit/s"}},
                  "probe": {"scenario": "fake", "enabled": True, "note": "", "metrics": {}}},
        "definition": {"parts": [{"name": "migrate", "phases": list(PHASES)},
                                 {"name": "probe", "phases": ["ping"]}]},
    }


def record(trial_id: str, part: str, params: dict[str, Any], rep: int, *, warmup: bool = False,
           outcome: str = "ok", phases: list[dict[str, Any]] | None = None,
           metrics: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    phases = phases or []
    return {
        "trial_id": trial_id, "part": part, "scenario": "fake", "index": 0, "repetition": rep,
        "warmup": warmup, "params": params, "resolved_params": params,
        "started_at": time.time(), "outcome": outcome, "error": error,
        "total_s": sum(p["wall_s"] for p in phases),
        "total_bytes": sum(p["bytes"] or 0 for p in phases) or None,
        "bandwidth_bps": 40e6, "phases": phases, "metrics": metrics or {}, "detail": {}}


def make_run(root: Path, *, seed: int = 1, scale: float = 1.0,
             experiment: str = "fx") -> RunDir:
    """A complete run of `experiment` under root: per migrate group one warm-up, REPETITIONS
    measured trials and one failed trial; one probe group whose list parameter becomes JSON."""
    rng = random.Random(seed)
    rd = RunDir.create(root, experiment)
    rd.write_info(info(experiment))
    n = 0
    for params in MIGRATE_PARAMS:
        size = params["size_mb"] * 1_000_000
        for rep in range(-1, REPETITIONS + 1):
            n += 1
            phases = [{"phase": "push", "wall_s": scale * size * 8 / 40e6 * (1 + rng.random()),
                       "bytes": size, "outcome": "ok"},
                      {"phase": "start", "wall_s": scale * (0.01 + rng.random() / 100),
                       "bytes": None, "outcome": "ok"}]
            metrics = {"score": rng.random(), "rate": 40e6 * (0.5 + rng.random())}
            if rep == REPETITIONS:  # failed: stopped in start, no metrics
                phases[1]["outcome"] = "failed"
                rd.append_trial(record(f"migrate/{n:04d}", "migrate", params, rep,
                                       outcome="failed", phases=phases,
                                       error="RuntimeError: <script>boom</script>"))
                continue
            rd.append_trial(record(f"migrate/{n:04d}", "migrate", params, rep,
                                   warmup=rep < 0, phases=phases, metrics=metrics))
    for params in PROBE_PARAMS:
        for rep in range(REPETITIONS):
            n += 1
            phases = [{"phase": "ping", "wall_s": scale * rng.uniform(0.001, 0.002),
                       "bytes": None, "outcome": "ok"}]
            rd.append_trial(record(f"probe/{n:04d}", "probe", params, rep, phases=phases,
                                   metrics={"score": rng.random()}))
    n += 1  # a trial that failed before its first phase
    rd.append_trial(record(f"probe/{n:04d}", "probe", PROBE_PARAMS[0], REPETITIONS,
                           outcome="failed", error="OperationFailed: no route"))
    return rd


def label(params: dict[str, Any]) -> str:
    """The report's parameter label, written out here independently."""
    return ", ".join(f"{k}={v}" for k, v in params.items())
