"""The ledger probe as the lab runs it (`ledger_lab.probe_command`: ``python -m
agents.ledger.probe <config>`` in the host's temp dir), here with this interpreter against
loopback ledger agents (validator + a peer host, central and direct services) over mTLS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.common.config import AgentConfig
from agents.common.server import AgentServer
from agents.ledger.agent import bootstrap, setup_central, setup_peers, setup_validator
from agents.ledger.peer import PeerHost
from agents.ledger.signing import public_key_bytes
from edgeferry.experiments.ledger_lab import probe_command

ROOT = Path(__file__).resolve().parents[2]
META = {"source_ip": "10.10.0.11", "container_id": "ctr-probe", "total_size": 2_130_000_000,
        "gpu_usage": 300, "cpu_usage": 1500, "type": "image-recog"}


def _run_probe(tmp: Path, name: str, cfg: dict[str, Any],
               commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One probe process: write its config, send every command, return every JSON line."""
    config = tmp / f"probe-{name}.json"
    config.write_text(json.dumps(cfg))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = probe_command(str(tmp), str(config), python=sys.executable)
    assert f" -m agents.ledger.probe {config} " in command
    stdin = "".join(json.dumps(c) + "\n" for c in [*commands, {"op": "quit"}])
    done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    log = Path(f"{config}.log")
    assert done.returncode == 0, log.read_text() if log.exists() else done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_probe_module_answers_the_lab_commands_over_mtls(
        tmp_path: Path, lab_pki: Any, agent_config: Callable[..., AgentConfig],
        run_agent_server: Callable[..., AgentServer]) -> None:
    vcfg = agent_config(name="validator",
                        **{"settings.role": "validator", "settings.node_id": "validator"},
                        **lab_pki.tls_overrides("ledger-validator.control"))
    holder: dict[str, Any] = {}
    validator = run_agent_server(
        vcfg, lambda s: holder.update(core=setup_validator(s, vcfg)[0]))
    pcfg = agent_config(name="edge2", **{
        "settings.role": "peers", "settings.node_id": "edge2", "settings.peers": 2,
        "settings.validator": f"127.0.0.1:{validator.port}",
        "settings.authority_key": public_key_bytes(holder["core"]._key).hex()},
        **lab_pki.tls_overrides("ledger-peer.edge2"))
    hosts: dict[str, PeerHost] = {}
    peers = run_agent_server(pcfg, lambda s: hosts.update(host=setup_peers(s, pcfg)))
    bootstrap(hosts["host"], peers, pcfg)
    services = {}
    for role in ("central", "direct"):
        ccfg = agent_config(name=role, **{"settings.role": "central"})
        services[role] = run_agent_server(ccfg, lambda s, c=ccfg: setup_central(s, c)).port
    tls = lab_pki.tls_config(lab_pki.issue("smf.edge1"))  # the probes act as the SMF does
    base = {"tls": {"ca_cert": str(tls.ca_cert), "cert": str(tls.cert), "key": str(tls.key)},
            "direct": f"127.0.0.1:{services['direct']}",
            "central": f"127.0.0.1:{services['central']}"}

    ready, noop, put, write, upload, tput = _run_probe(
        tmp_path, "source", {**base, "node_id": "smf",
                             "validator": f"127.0.0.1:{validator.port}"},
        [{"op": "noop"},
         {"op": "put", "service": "direct", "meta": META},
         {"op": "ledger_write", "meta": META, "quorum": 0.9, "timeout": 10},
         {"op": "put", "service": "central", "meta": META},
         {"op": "throughput", "service": "ledger", "ops": 3, "concurrency": 2,
          "meta": {**META, "container_id": "ctr-tput"}}])
    assert ready["ready"] and ready["pid"] > 0
    assert noop == {"ok_": True}
    assert put["ok_"] and put["wall_s"] > 0 and upload["ok_"]
    assert write["ok_"] and write["ok"], write
    assert write["total_nodes"] == 2 and write["confirmations_all"] == 2
    assert write["t100_s"] >= write["t90_s"] > 0
    assert tput["ok_"] and tput["ops"] == 3 and tput["settled"]

    resources = [4 * 10**9, 4000, 1000, ["image-recog"]]
    answers = _run_probe(
        tmp_path, "destination", {**base, "node_id": "destination@edge2",
                                  "replica": f"127.0.0.1:{peers.port}",
                                  "replica_peer": "edge2-001"},
        [{"op": "read", "service": s, "container_id": "ctr-probe", "resources": resources,
          "timeout": 10} for s in ("direct", "replica", "central")]
        + [{"op": "read", "service": "central", "container_id": "ctr-none",
            "resources": resources, "timeout": 0.05},
           {"op": "nonsense"}])
    ready, *reads, missing, refused = answers
    assert ready["ready"]
    assert all(r["ok_"] and r["found"] and r["accept"] for r in reads), reads
    assert missing["ok_"] and not missing["found"]
    assert not refused["ok_"] and "unknown op" in refused["error"]


def test_probe_help_names_its_config_argument() -> None:
    done = subprocess.run([sys.executable, "-m", "agents.ledger.probe", "--help"],
                          capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "python -m agents.ledger.probe" in done.stdout and "config" in done.stdout


def test_probe_streams_a_container_file_to_itself_over_mtls(tmp_path: Path, lab_pki: Any) -> None:
    """Figure 11's transfer commands through the probe process: listen, send, collect the
    outcome, remove; a resident load is held; resources without a node agent is an error."""
    import hashlib
    import socket

    tls = lab_pki.tls_config(lab_pki.issue("smf.edge1"))
    payload = tmp_path / "image.tar"
    payload.write_bytes(os.urandom(2_500_000))
    stored = tmp_path / "stored.tar"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "a1" * 16
    cfg = {"tls": {"ca_cert": str(tls.ca_cert), "cert": str(tls.cert), "key": str(tls.key)},
           "address": "127.0.0.1", "node_id": "cloud@test"}
    ready, listening, sent, got, removed, held, freed, no_node = _run_probe(
        tmp_path, "transfer", cfg,
        [{"op": "receive", "port": port, "token": token, "senders": ["smf.edge1"],
          "max_bytes": 10_000_000, "file": str(stored)},
         {"op": "send", "address": "127.0.0.1", "port": port, "token": token,
          "file": str(payload)},
         {"op": "received", "token": token, "timeout": 30},
         {"op": "remove", "file": str(stored)},
         {"op": "ballast", "bytes": 8_000_000},
         {"op": "ballast", "bytes": 0},
         {"op": "resources"}])
    want = hashlib.sha256(payload.read_bytes()).hexdigest()
    assert ready["ready"] and listening["listening"]
    assert sent["ok_"] and sent["bytes"] == sent["sent_bytes"] == 2_500_000, sent
    assert sent["sha256"] == want and sent["wall_s"] > 0
    assert got["ok_"] and got["sha256"] == want and got["sender"] == "smf.edge1"
    assert removed["ok_"] and not stored.exists()
    assert held["held"] == 8_000_000 and freed["held"] == 0
    assert not no_node["ok_"] and "no node agent" in no_node["error"]
