"""AuditService over a real SQLite store, a real audit log and real sealed owner tokens."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from agents.audit.auditlog import AuditLog
from agents.audit.destination import Target
from agents.audit.domain import (
    AlreadyExists,
    EdgeState,
    InvalidOwnerToken,
    NotFound,
    NotOwner,
    PolicyError,
)
from agents.audit.monitor import EdgeMonitor
from agents.audit.owners import NoOwnerVerifier, SealedTokenVerifier, seal_owner_token
from agents.audit.service import AuditService
from agents.audit.store import AuditStore
from agents.audit.tables import seed002_tables
from agents.common.store import Store

KEY = secrets.token_bytes(32)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> AuditService:
    store = AuditStore(Store.open(tmp_path / "audit.sqlite3"), clock=clock)
    log = AuditLog.open(tmp_path / "audit.jsonl", tmp_path / "audit.key", clock=clock)
    return AuditService(store, log, SealedTokenVerifier(KEY, clock=clock), seed=42,
                        max_state_age=1200, clock=clock)


def token(owner: str, clock: Clock, ttl: float = 3600) -> bytes:
    return seal_owner_token(KEY, owner, ttl, clock=clock)


def load_paper(service: AuditService, clock: Clock) -> dict[str, str]:
    """Edge owner 'eo' registers Table 6; container owner 'co' redeems every share key."""
    doc = seed002_tables()
    eo, co = token("eo", clock), token("co", clock)
    keys = {}
    for name, edge in doc.edges.items():
        _, keys[name] = service.register_edge(eo, name, edge.canonical(), region=edge.region,
                                              address=edge.address)
    for name, key in keys.items():
        assert service.redeem_share_key(co, key) == name
    app = doc.containers["App1"]
    service.register_container(co, "App1", app.canonical(), location="Edge1")
    for name in doc.edges:
        service.record_state(name, EdgeState(40, 30, True, clock()))
    return keys


def test_paper_verification_through_the_service_is_logged(service, clock):
    load_paper(service, clock)
    co = token("co", clock)
    verdicts = {}
    for i in range(2, 9):
        ev = service.evaluate(co, "App1", Target.edge(f"Edge{i}"), caller="smf")
        verdicts[f"Edge{i}"] = ev.decision.permit
        entry = next(iter(service.log.entries(start=ev.log_seq)))
        assert entry.entry["kind"] == "decision" and entry.entry["caller"] == "smf"
        assert entry.entry["decision"]["permit"] == ev.decision.permit
        assert entry.entry["request_id"] == ev.request_id
    assert verdicts == {"Edge2": False, "Edge3": True, "Edge4": False, "Edge5": True,
                        "Edge6": False, "Edge7": True, "Edge8": True}
    ev = service.evaluate(co, "App1", Target.region("regionD"))
    assert ev.decision.chosen in {"Edge7", "Edge8"} and ev.decision.seed is not None
    assert service.log.verify().ok


def test_owner_scoping_and_sharing(service, clock):
    load_paper(service, clock)
    stranger = token("mallory", clock)
    with pytest.raises(NotOwner):
        service.evaluate(stranger, "App1", Target.edge("Edge3"))
    with pytest.raises(NotOwner):
        service.update_edge(stranger, "Edge3", {"eDAl": "jp"})
    with pytest.raises(NotOwner):
        service.delete_container(stranger, "App1")
    # mallory's own container sees only edges shared with mallory
    service.register_container(stranger, "M1", {"cDAl": "jp,us,fr,de,kr"})
    ev = service.evaluate(stranger, "M1", Target.any())
    assert not ev.decision.permit and ev.decision.candidates == ()
    ev = service.evaluate(stranger, "M1", Target.edge("Edge3"))
    assert [c.element for c in ev.decision.tries[0].failures] == ["access"]
    kinds = [e.entry["kind"] for e in service.log.entries()]
    assert kinds.count("request_refused") == 1


def test_share_key_rotation(service, clock):
    keys = load_paper(service, clock)
    eo = token("eo", clock)
    new = service.rotate_share_key(eo, "Edge3")
    with pytest.raises(NotFound):
        service.redeem_share_key(token("x", clock), keys["Edge3"])
    assert service.redeem_share_key(token("x", clock), new.upper()) == "Edge3"
    assert len(new) == 40


def test_tokens_are_verified(service, clock):
    load_paper(service, clock)
    good = token("co", clock, ttl=10)
    with pytest.raises(InvalidOwnerToken, match="bad tag"):
        service.evaluate(good[:-1] + bytes([good[-1] ^ 1]), "App1", Target.edge("Edge3"))
    forged = seal_owner_token(secrets.token_bytes(32), "co", clock=clock)
    with pytest.raises(InvalidOwnerToken):
        service.evaluate(forged, "App1", Target.edge("Edge3"))
    clock.now += 11
    with pytest.raises(InvalidOwnerToken, match="expired"):
        service.evaluate(good, "App1", Target.edge("Edge3"))
    with pytest.raises(InvalidOwnerToken, match="malformed"):
        service.evaluate(b"EFO1short", "App1", Target.edge("Edge3"))
    with pytest.raises(InvalidOwnerToken, match="no owner verifier"):
        NoOwnerVerifier().verify(good)


def test_registry_errors(service, clock):
    load_paper(service, clock)
    eo = token("eo", clock)
    with pytest.raises(AlreadyExists):
        service.register_edge(eo, "Edge1", {"eDAl": "jp"})
    with pytest.raises(PolicyError):
        service.register_edge(eo, "Edge9", {"eDAl": "xx"})
    with pytest.raises(NotFound):
        service.register_container(eo, "C", {}, location="Edge99")
    with pytest.raises(NotFound):
        service.evaluate(eo, "nope", Target.any())
    service.delete_edge(eo, "Edge8")
    assert "Edge8" not in service.edges() and "Edge8" not in service.states()


def test_stale_state_denies_and_monitor_refreshes(service, clock):
    load_paper(service, clock)
    co = token("co", clock)
    clock.now += 1300  # older than max_state_age (1200 s)
    ev = service.evaluate(co, "App1", Target.edge("Edge3"))
    assert [c.element for c in ev.decision.tries[0].failures] == ["cHRcu", "cHRmu"]

    class Probe:
        def probe(self, edge):
            if edge.name == "Edge5":
                raise ConnectionError("node agent unreachable")
            return (55.0, 45.0) if edge.name == "Edge3" else (10.0, 10.0)

    monitor = EdgeMonitor(service, Probe(), interval_s=600, clock=clock)
    seen = monitor.poll_once()
    assert seen["Edge3"] == EdgeState(55.0, 45.0, True, clock.now)
    assert not seen["Edge5"].alive
    assert service.evaluate(co, "App1", Target.edge("Edge3")).decision.permit
    ev = service.evaluate(co, "App1", Target.edge("Edge5"))
    # a failed reading: the edge is down and its utilisation rows deny with the reason
    failures = ev.decision.tries[0].failures
    assert [c.element for c in failures] == ["liveness", "cHRcu", "cHRmu"]
    assert all("node agent unreachable" in c.note for c in failures[1:])


def test_monitor_thread_polls_at_its_interval(service, clock):
    load_paper(service, clock)
    calls = []

    class Probe:
        def probe(self, edge):
            calls.append(edge.name)
            return (1.0, 1.0)

    monitor = EdgeMonitor(service, Probe(), interval_s=0.05, clock=clock)
    monitor.start()
    import time
    time.sleep(0.3)
    monitor.stop()
    assert monitor.polls >= 3 and len(calls) == 8 * monitor.polls
    with pytest.raises(ValueError):
        EdgeMonitor(service, Probe(), interval_s=0)


def test_state_survives_restart(tmp_path, clock):
    store = AuditStore(Store.open(tmp_path / "a.sqlite3"), clock=clock)
    log = AuditLog.open(tmp_path / "a.jsonl", tmp_path / "a.key")
    svc = AuditService(store, log, SealedTokenVerifier(KEY, clock=clock), clock=clock)
    load_paper(svc, clock)
    log.close()
    store.store.close()
    store2 = AuditStore(Store.open(tmp_path / "a.sqlite3"), clock=clock)
    log2 = AuditLog.open(tmp_path / "a.jsonl", tmp_path / "a.key")
    svc2 = AuditService(store2, log2, SealedTokenVerifier(KEY, clock=clock), clock=clock)
    ev = svc2.evaluate(token("co", clock), "App1", Target.edge("Edge7"))
    assert ev.decision.permit and log2.length == ev.log_seq
