"""Seed 002 cases 1-3: data-audit decisions through the real audit service.

The service runs in-process over its real parts: the SQLite registry, the HMAC-chained audit
log (every decision fsynced before the answer) and sealed owner tokens. Per trial:

- ``audit``: the decision itself, as the service times it (perf_counter around
  choose_destination: the quantity the paper's 0.026-0.212 ms measures);
- ``audit-record``: the rest of the Evaluate call (owner check, registry reads, audit-log
  append + fsync), measured with time.monotonic around the call minus the decision.

The migration that follows a permit in the paper (LXC + CRIU) is not part of this scenario
(CRIU does not work on the project's kernels; see the container-migration scenario).
"""

from __future__ import annotations

import random
import secrets
import time
from pathlib import Path
from typing import Any

from edgeferry.experiments.scenario import (
    PhaseResult,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    TrialResult,
)
from edgeferry.experiments.workloads import AuditWorkload


def _target(text: str) -> Any:
    from agents.audit.destination import Target

    mode, _, name = text.partition(":")
    return {"edge": Target.edge, "region": Target.region}[mode](name) if name else Target.any()


def published_permit(published: dict[str, Any], target: str) -> bool | None:
    """The paper's verdict for a target (Figure 19 / Tables 7-8), None if it has none."""
    mode, _, name = target.partition(":")
    if mode == "edge":
        entry = (published.get("figure19") or {}).get(name)
        return None if entry is None else bool(entry["permit"])
    if mode == "region":
        entry = (published.get("table7") or {}).get(name)
        return None if entry is None else any(v == "permit" for _, v in entry["tries"])
    rows = published.get("table8") or []
    return True if rows else None


class AuditCases(Scenario):
    workload: AuditWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        try:
            from agents.audit.auditlog import AuditLog
            from agents.audit.owners import SealedTokenVerifier, seal_owner_token
            from agents.audit.service import AuditService
            from agents.audit.store import AuditStore
            from agents.audit.tables import load_policy_file, seed002_tables
            from agents.common.store import Store
        except ImportError as err:
            raise ScenarioUnavailable(f"audit-cases needs agents.audit: {err}") from None
        if self.workload.transport == "grpc":
            try:
                __import__("agents.audit.servicer")
            except ImportError:
                raise ScenarioUnavailable(
                    "audit-cases with transport: grpc needs the audit agent's servicer "
                    "(agents/audit/servicer.py) - not there yet; use transport: in-process"
                ) from None
            raise ScenarioUnavailable("audit-cases over gRPC is not wired yet; use in-process")
        if self.workload.tables == "seed002":
            doc = seed002_tables(now=time.time())
        else:
            path = Path(self.workload.tables)
            doc = load_policy_file(path if path.is_absolute() else ctx.run_dir / path,
                                   now=time.time())
        if self.workload.container not in doc.containers:
            raise ScenarioUnavailable(
                f"policy tables have no container {self.workload.container!r}")
        work = ctx.work_dir
        key = secrets.token_bytes(32)
        self._store = Store.open(work / "audit.sqlite3")
        self.service = AuditService(
            AuditStore(self._store),
            AuditLog.open(work / "audit.jsonl", work / "audit.key"),
            SealedTokenVerifier(key), seed=ctx.seed)
        edge_owner = seal_owner_token(key, "edge-owner", 24 * 3600)
        self.token = seal_owner_token(key, "container-owner", 24 * 3600)
        existing = set(self.service.edges())
        for name, edge in doc.edges.items():
            if name in existing:  # resumed run: the registry in work_dir is already loaded
                continue
            _, share = self.service.register_edge(edge_owner, name, edge.canonical(),
                                                  region=edge.region, address=edge.address)
            self.service.redeem_share_key(self.token, share)
        app = doc.containers[self.workload.container]
        try:
            self.service.get_container(self.token, app.name)
        except Exception:
            self.service.register_container(self.token, app.name, app.canonical(),
                                            location=app.location)
        for name, state in doc.states.items():
            self.service.record_state(name, state, source="experiment tables")
        self.published = doc.published
        self.rng = random.Random(ctx.seed)

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        target = params["target"]
        seed = self.rng.randrange(2**63)
        ctx.progress("audit")
        t0 = time.monotonic()
        ev = self.service.evaluate(self.token, self.workload.container, _target(target),
                                   seed=seed, caller="edgeferry-run")
        elapsed = time.monotonic() - t0
        decision = ev.decision
        tries = [[d.edge, "permit" if d.permit else "deny"] for d in decision.tries]
        failed = {d.edge: [c.element for c in d.failures] for d in decision.tries
                  if not d.permit}
        method = "AuditService.evaluate: decision timed with perf_counter inside the service"
        phases = [
            PhaseResult("audit", ev.audit_seconds, 0, "ok",
                        {"method": method, "permit": decision.permit, "chosen": decision.chosen,
                         "tries": tries, "failed_elements": failed, "seed": seed}),
            PhaseResult("audit-record", max(0.0, elapsed - ev.audit_seconds), 0, "ok",
                        {"method": "monotonic around evaluate() minus the decision: owner "
                                   "check, registry reads, audit-log append with fsync",
                         "log_seq": ev.log_seq}),
        ]
        metrics: dict[str, float] = {"permit": float(decision.permit),
                                     "tries": float(len(tries))}
        expected = published_permit(self.published, target)
        if expected is not None:
            metrics["agrees_with_paper"] = float(expected == decision.permit)
        return TrialResult(phases=phases, metrics=metrics,
                           detail={"request_id": ev.request_id, "target": target})

    def teardown(self, ctx: ScenarioContext) -> None:
        store = getattr(self, "_store", None)
        if store is not None:
            store.close()
        log = getattr(getattr(self, "service", None), "log", None)
        if log is not None and hasattr(log, "close"):
            log.close()
