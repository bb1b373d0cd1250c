"""Migrate Service moves a real NMS container end to end (issue 5, part 2).

Real agents over mTLS on 127.0.0.1 (see migration_lab.py): SMF with the audit agent, the ledger
(validator + 9 peer identities, 90 % quorum), the RAS, and two node-agent *processes* that each
host NodeService + RASP endpoint + SSP server; the local Docker engine and a TLS registry with
auth. An NMS client that finds the NMS only through the SMF (Request Service, SSP session,
``locate nms``) writes blocks, the service is migrated edge-a -> edge-b -> edge-a, and every
block reads back with its SHA-256.

What this proves on one machine: the phase order and the fencing/location rules, the digest and
size carried authenticated in RASP step 10 and checked by the destination agent, the workload's
state surviving stop/commit/push/pull/run, the client following the service through the SMF,
bytes actually pushed/pulled per phase. What it does not: cross-host bandwidth (one engine holds
both "hosts"; base layers are shared, only the migrated top layer moves) -- the lab run does.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from agents.ras.client import RasClient
from agents.smf.container import NodeContainerPhases
from tests.integration.migration_lab import (
    EDGE_MAX,
    SERVICE_NEEDS,
    MigrationLab,
    migration_lab,
    phase_table,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

#: the default, diff-first order: only stop .. first_response is downtime
PHASES = ["policy_audit", "prepull", "rasp_handshake", "ledger_write", "self_evaluation",
          "stop", "commit", "push", "rasp_transfer", "pull", "run", "first_response",
          "rasp_location_update", "location_commit", "audit_location_update", "source_cleanup"]
#: the paper's order (fidelity runs)
PAPER_PHASES = ["policy_audit", "stop", "commit", "push", "rasp_handshake", "ledger_write",
                "self_evaluation", "pull", "run", "first_response", "rasp_location_update",
                "location_commit", "audit_location_update", "source_cleanup"]

#: the direct order: the diff goes engine to engine through the SMF, the registry after
DIRECT_PHASES = ["policy_audit", "prepull", "rasp_handshake", "ledger_write", "self_evaluation",
                 "stop", "transfer", "rasp_transfer", "load", "run", "first_response",
                 "publish", "rasp_location_update", "location_commit", "audit_location_update",
                 "source_cleanup"]


@pytest.fixture
def lab(lab_pki, tmp_path: Path) -> Iterator[MigrationLab]:  # type: ignore[no-untyped-def]
    with migration_lab(lab_pki, tmp_path) as lab:
        yield lab


def _write_blocks(client, count: int, blocks: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
    for _ in range(count):
        data = os.urandom(client.block_size)
        bid = client.allocate()
        client.write(bid, data)
        blocks[bid] = hashlib.sha256(data).hexdigest()


def _check_blocks(client, blocks: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    """Number of blocks that do not read back with their checksum."""
    return sum(1 for bid, digest in blocks.items()
               if hashlib.sha256(client.read(bid)).hexdigest() != digest)


def test_nms_migrates_through_smf_with_audit_ledger_rasp_and_containers(lab: MigrationLab
                                                                          ) -> None:
    blocks: dict[int, str] = {}
    client = lab.nms_client()
    _write_blocks(client, 24, blocks)
    first_endpoint = client.endpoint
    assert lab.running_on() == "edge-a" and lab.location() == ("edge-a", 1)

    report = lab.migrate("edge-b")
    print("\nedge-a -> edge-b\n" + phase_table(report))
    assert report.migrated, report.error_message
    assert report.order == "diff"
    assert [p.phase for p in report.phases] == PHASES
    assert all(p.outcome == "ok" for p in report.phases)
    assert all(p.wall_seconds > 0 for p in report.phases)
    phases = {p.phase: p for p in report.phases}
    # bytes actually moved: the first push sends the whole image (nothing in the registry
    # yet); the pull moves only the migrated top layer (base layers are in the one engine)
    assert phases["push"].bytes_moved > 0 and phases["pull"].bytes_moved > 0
    assert phases["pull"].bytes_moved < phases["push"].bytes_moved
    assert phases["rasp_handshake"].bytes_moved > 0 and phases["rasp_transfer"].bytes_moved > 0
    # the registered image was never pushed (the first deployment ran a local image): the
    # prepull says so and the migration goes on
    assert "not pre-pulled" in phases["prepull"].detail, phases["prepull"].detail
    found = re.search(r"(\d+)/(\d+) confirmations", phases["ledger_write"].detail)
    assert found is not None
    got, total = found.groups()
    assert int(total) >= 9 and int(got) >= 0.9 * int(total)  # Algorithm 1: >= 90 % of nodes
    assert (report.location, report.epoch) == ("edge-b", 2)
    assert lab.location() == ("edge-b", 2)
    # exactly one copy, at the destination; the source container is gone
    assert lab.running_copies() == [lab.nodes["edge-b"].container]
    engine = docker.from_env()
    assert not engine.containers.list(all=True, filters={"name": lab.nodes["edge-a"].container})

    # the destination agent received digest + size in RASP step 10 and pulled exactly that
    transfer = lab.endpoint("edge-b").session_info(report.rasp_session_id).transfer
    assert transfer.image_digest.startswith("sha256:") and transfer.size_bytes > 0
    assert transfer.image_digest in phases["push"].detail
    container = engine.containers.get(lab.nodes["edge-b"].container)
    assert container.image.attrs["RepoDigests"][0].endswith(transfer.image_digest)
    # the keys were re-sent as secrets, not committed into the image
    assert not any(n in d["Path"] for d in (container.diff() or [])
                   for n in ("nms.key", "nms-tls.key"))

    # the client reconnects through the SMF and finds every block; more writes go to edge-b
    assert _check_blocks(client, blocks) == 0
    assert client.endpoint != first_endpoint and client.outages
    _write_blocks(client, 8, blocks)

    back = lab.migrate("edge-a")
    print("\nedge-b -> edge-a\n" + phase_table(back))
    assert back.migrated, back.error_message
    assert (back.location, back.epoch) == ("edge-a", 3)
    again = {p.phase: p for p in back.phases}
    # the registry already holds the base layers: the second push sends only the new layer
    assert 0 < again["push"].bytes_moved < phases["push"].bytes_moved
    assert lab.running_copies() == [lab.nodes["edge-a"].container]
    assert _check_blocks(client, blocks) == 0 and len(blocks) == 32
    client.close()


def test_audit_denial_stops_before_anything_moves(lab: MigrationLab) -> None:
    client = lab.nms_client()
    blocks: dict[int, str] = {}
    _write_blocks(client, 4, blocks)
    before = docker.from_env().containers.get(lab.nodes["edge-a"].container).attrs["State"]

    report = lab.migrate("edge-c")  # edge-c's country is not allowed by the owner (cDAl)
    assert not report.migrated and report.error_code == "POLICY_DENIED"
    outcome = {p.phase: p.outcome for p in report.phases}
    assert outcome["policy_audit"] == "rejected"
    assert "cDAl" in next(p.detail for p in report.phases if p.phase == "policy_audit")
    assert all(o == "skipped" for k, o in outcome.items() if k != "policy_audit")
    assert lab.location() == ("edge-a", 1)
    after = docker.from_env().containers.get(lab.nodes["edge-a"].container).attrs["State"]
    assert after["StartedAt"] == before["StartedAt"] and after["Running"]  # never stopped
    assert _check_blocks(client, blocks) == 0
    client.close()


def test_diff_order_pulls_only_the_committed_top_layer_after_the_stop(lab: MigrationLab
                                                                      ) -> None:
    """The second migration pre-pulls (before the stop) the image the source runs from -- the
    first migration's pinned image -- and its pull after the stop fetches exactly the one layer
    the commit added: expected from the registry's manifests (read here with the registry's
    API), the pushed image is the pre-pulled image's layers plus one. One engine holds both
    "hosts", so base layers would be local anyway; the lab run measures the cross-host case."""
    client = lab.nms_client()
    blocks: dict[int, str] = {}
    _write_blocks(client, 8, blocks)
    first = lab.migrate("edge-b")
    assert first.migrated, first.error_message
    info = lab.endpoint("edge-b").session_info(first.rasp_session_id).transfer
    running = docker.from_env().containers.get(lab.nodes["edge-b"].container)
    pinned = next(d for d in running.image.attrs["RepoDigests"] if d.endswith(info.image_digest))
    _write_blocks(client, 8, blocks)  # new state in the writable layer

    back = lab.migrate("edge-a")
    print("\ndiff order, second migration\n" + phase_table(back))
    assert back.migrated and back.order == "diff", back.error_message
    phases = {p.phase: p for p in back.phases}
    assert [p.phase for p in back.phases] == PHASES
    # before the stop: the destination pre-pulled the image the source ran from
    assert f"pre-pulled {pinned}" in phases["prepull"].detail, phases["prepull"].detail
    names = [p.phase for p in back.phases]
    assert names.index("prepull") < names.index("stop")
    assert names.index("rasp_handshake") < names.index("stop") < names.index("rasp_transfer")
    base = lab.manifest(pinned)["layers"]
    pushed_digest = lab.endpoint("edge-a").session_info(back.rasp_session_id).transfer
    pushed = lab.manifest(f"{pinned.split('@')[0]}@{pushed_digest.image_digest}")["layers"]
    assert [x["digest"] for x in pushed[:-1]] == [x["digest"] for x in base]
    top, whole = int(pushed[-1]["size"]), sum(int(x["size"]) for x in pushed)
    assert phases["pull"].bytes_moved == top, (phases["pull"].bytes_moved, top)
    assert "1/" in phases["pull"].detail  # one layer fetched
    assert top * 5 < whole, (top, whole)  # the diff is a small part of the image
    print(f"pull after the stop: {top} bytes of a {whole}-byte image ({len(pushed)} layers)")
    assert _check_blocks(client, blocks) == 0 and lab.running_on() == "edge-a"
    client.close()


def test_direct_order_relays_the_diff_checked_against_rasp_and_publishes_it_after(
        lab: MigrationLab) -> None:
    """The direct order over real agents: the source's changes leave its agent as one layer,
    relayed by the SMF to the destination's agent, which checks them against RASP step 10
    (digest, from the source under Ksc) and loads them; the registry gets the image only after
    the first response (publish), and the next migration pre-pulls that published image."""
    client = lab.nms_client()
    blocks: dict[int, str] = {}
    _write_blocks(client, 16, blocks)
    report = lab.migrate("edge-b", order="direct")
    print("\ndirect order\n" + phase_table(report))
    assert report.migrated and report.order == "direct", report.error_message
    assert [p.phase for p in report.phases] == DIRECT_PHASES
    phases = {p.phase: p for p in report.phases}
    transfer = lab.endpoint("edge-b").session_info(report.rasp_session_id).transfer
    layer_bytes = phases["transfer"].bytes_moved
    assert layer_bytes == transfer.size_bytes > 16 * 8192  # the blocks, in one layer
    assert transfer.image_digest in phases["load"].detail  # step 10 names the image
    engine_client = docker.from_env
    running = engine_client().containers.get(lab.nodes["edge-b"].container)
    # the running image is the one step 10 named: the source's image plus the relayed layer
    assert running.image.id == transfer.image_digest
    layer = running.image.attrs["RootFS"]["Layers"][-1]
    assert f"layer {layer}" in phases["transfer"].detail
    # the secrets mounted into the source are not in it (a commit leaves mounts out, too)
    bare = engine_client().containers.create(running.image.id, name=f"{running.name}-bare")
    try:
        for name in ("nms.key", "nms-tls.key"):
            with pytest.raises(docker.errors.NotFound):
                bare.get_archive(f"/run/secrets/{name}")
    finally:
        bare.remove()
    # published after the first response: the registry's manifest holds the same image
    published = next(d for d in running.image.attrs["RepoDigests"])
    assert lab.manifest(published)["config"]["digest"] == running.image.id
    assert lab.running_copies() == [lab.nodes["edge-b"].container]
    assert _check_blocks(client, blocks) == 0

    _write_blocks(client, 8, blocks)
    back = lab.migrate("edge-a", order="direct")
    print("\ndirect order, back\n" + phase_table(back))
    assert back.migrated, back.error_message
    again = {p.phase: p for p in back.phases}
    assert f"pre-pulled {published}" in again["prepull"].detail, again["prepull"].detail
    assert lab.running_copies() == [lab.nodes["edge-a"].container]
    assert _check_blocks(client, blocks) == 0 and len(blocks) == 24
    client.close()


def _started_at(lab: MigrationLab, node: str) -> str:
    state = docker.from_env().containers.get(lab.nodes[node].container).attrs["State"]
    assert state["Running"]
    return str(state["StartedAt"])


def test_rollback_on_self_evaluation_reject_in_both_orders_and_paper_proactive(
        lab: MigrationLab) -> None:
    """A destination that rejects in Algorithm 2. Paper order (after the stop): the abort
    restarts the source in place. Diff order (before the stop): the source never stopped. In
    both no block is lost and the location stays; then the paper order with the proactive
    prepull migrates."""
    client = lab.nms_client()
    blocks: dict[int, str] = {}
    _write_blocks(client, 6, blocks)
    ports = lab.ports()
    ledger = ports.ledger
    assert ledger is not None
    saved = ledger.application_types
    ledger.application_types = ()  # no matching application type: Algorithm 2 rejects
    try:
        report = lab.migrate("edge-b", order="paper")
        started = _started_at(lab, "edge-a")
        diff = lab.migrate("edge-b")
        assert _started_at(lab, "edge-a") == started  # the diff order never stopped it
    finally:
        ledger.application_types = saved
    print("\nrejected by self-evaluation (paper)\n" + phase_table(report))
    print("\nrejected by self-evaluation (diff)\n" + phase_table(diff))
    assert not report.migrated and report.order == "paper"
    outcome = {p.phase: p.outcome for p in report.phases}
    assert outcome["self_evaluation"] == "rejected" and outcome["stop"] == "ok"
    abort = report.phases[-1]
    assert abort.phase == "abort" and abort.outcome == "ok" and "source restarted" in abort.detail
    assert not diff.migrated and diff.order == "diff"
    outcome = {p.phase: p.outcome for p in diff.phases}
    assert outcome["self_evaluation"] == "rejected" and outcome["stop"] == "skipped"
    assert outcome["prepull"] == "ok" and outcome["rasp_handshake"] == "ok"
    abort = diff.phases[-1]
    assert abort.phase == "abort" and abort.outcome == "ok"
    assert "source restarted" not in abort.detail and "rolled_back" in abort.detail
    assert lab.location() == ("edge-a", 1) and lab.running_on() == "edge-a"
    assert _check_blocks(client, blocks) == 0
    _write_blocks(client, 2, blocks)

    # paper order, proactive mode: base layers pre-pulled at the destination before the stop
    container = ports.container
    assert isinstance(container, NodeContainerPhases)
    container.proactive = True
    container.templates["nms"] = replace(container.templates["nms"],
                                         base_image=lab.push_base_image())
    report = lab.migrate("edge-b", order="paper")
    print("\nproactive (paper)\n" + phase_table(report))
    assert report.migrated, report.error_message
    assert [p.phase for p in report.phases] == ["policy_audit", "prepull", *PAPER_PHASES[1:]]
    assert report.phases[1].outcome == "ok" and "pre-pulled" in report.phases[1].detail
    # the rolled-back migrations were finished: this is a new one (attempt 1)
    assert "attempt 1" in next(p.detail for p in report.phases if p.phase == "stop")
    assert _check_blocks(client, blocks) == 0 and lab.running_on() == "edge-b"
    client.close()


def _ras(lab: MigrationLab) -> RasClient:
    return RasClient(lab.channel(f"127.0.0.1:{lab.ras_port}"), timeout=10.0)


def _free(lab: MigrationLab) -> dict[str, tuple[int, int, int, int]]:
    """FREE per edge host as its RASP endpoint advertises it; checked against the RAS table."""
    table = {c.name: c.free for c in _ras(lab).table().clouds}
    out = {}
    for name in lab.nodes:
        f = lab.endpoint(name).identity()[1]
        row = table[name]
        assert (f.cpu, f.network) == (row.cpu_millicores, row.network_bps // 1_000_000), name
        out[name] = f.values()
    return out


def test_many_migrations_within_max_release_the_source(lab: MigrationLab) -> None:
    """MAX.network is 40 Mbit/s and the NMS needs 10: without releases the fifth arrival on a
    host would be refused. 10 migrations edge-a <-> edge-b (the source's node agent SIGKILLed
    and restarted half way): after each, the host running the NMS has MAX - NEED free and the
    other MAX, at the endpoints and in the RAS table."""
    need = SERVICE_NEEDS.values()
    full = tuple(EDGE_MAX[k] for k in ("cpu", "memory", "storage", "network"))
    less = tuple(m - n for m, n in zip(full, need, strict=True))
    here, there = "edge-a", "edge-b"
    for i in range(10):
        if i == 5:
            lab.nodes[here].kill()
            lab.nodes[here].start()
        report = lab.migrate(there)
        assert report.migrated, (i, report.error_message, phase_table(report))
        assert lab.running_on() == there
        free = _free(lab)
        assert free[here] == full, (i, free)  # (edge-a's first stay was not a RASP arrival)
        assert free[there] == less, (i, free)
        rows = _ras(lab).table().service_allocations
        assert [(r.service, r.cloud) for r in rows] == [("nms", there)]
        here, there = there, here


def test_the_installed_command_prints_each_phase_as_it_ends(lab: MigrationLab,
                                                            tmp_path: Path) -> None:
    """`edgeferry smf migrate` as a user runs it (the console script, a subprocess): one line
    per phase while the migration runs (read here as they arrive), the table, exit 0; a
    migration the audit denies exits 1 with the location kept."""
    import subprocess
    import time

    from tests.entry import REPO, SCRIPT

    w = lab.who
    ucap, dcap = tmp_path / "user.cap", tmp_path / "device.cap"
    ucap.write_text(w.user_cap.to_text())
    dcap.write_text(w.device_cap.to_text())
    conn = ["--user", w.user_id, "--device", w.device_id, "--user-cap", str(ucap),
            "--device-cap", str(dcap), "--smf", f"127.0.0.1:{lab.smf_port}",
            "--ca-cert", str(lab.pki.ca.cert_path), "--cert", str(lab.pki.client.cert_path),
            "--key", str(lab.pki.client.key_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([str(SCRIPT), "smf", "migrate", lab.service_id, "--to", "edge-b",
                             *conn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    assert proc.stdout is not None
    arrivals = [(time.monotonic(), line) for line in proc.stdout]
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    live = [(t, m.group(1), float(m.group(2))) for t, line in arrivals
            if (m := re.match(r"^  (\w+)\s+ok\s+([\d.]+) ms$", line.rstrip()))]
    assert [name for _, name, _ in live] == PHASES, arrivals
    # streamed, not printed at the end: the last phase line came after the first by at least
    # half of what the phases in between took by the SMF's own clock
    spread = live[-1][0] - live[0][0]
    assert spread >= 0.5 * sum(ms for _, _, ms in live[1:]) / 1000, (spread, live)
    assert arrivals[-1][1].strip() == f"{lab.service_id} now runs on edge-b (epoch 2)"
    assert lab.location() == ("edge-b", 2)

    denied = subprocess.run([str(SCRIPT), "smf", "migrate", lab.service_id, "--to", "edge-c",
                             *conn], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=300)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "the service stays on edge-b (epoch 2)" in denied.stderr, denied.stderr
    assert lab.location() == ("edge-b", 2) and lab.running_on() == "edge-b"

    # the direct order through the same command: its phases, exit 0; an unknown order is a
    # usage error (exit 2) that names the orders
    back = subprocess.run([str(SCRIPT), "smf", "migrate", lab.service_id, "--to", "edge-a",
                           "--order", "direct", *conn], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert back.returncode == 0, back.stdout + back.stderr
    lines = [m.group(1) for line in back.stdout.splitlines()
             if (m := re.match(r"^  (\w+)\s+ok\s+[\d.]+ ms$", line.rstrip()))]
    assert lines == DIRECT_PHASES, back.stdout
    assert lab.location() == ("edge-a", 3) and lab.running_on() == "edge-a"
    bogus = subprocess.run([str(SCRIPT), "smf", "migrate", lab.service_id, "--to", "edge-b",
                            "--order", "registry-free", *conn], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=60)
    assert bogus.returncode == 2 and "'direct'" in bogus.stderr, bogus.stderr
    assert lab.location() == ("edge-a", 3)
