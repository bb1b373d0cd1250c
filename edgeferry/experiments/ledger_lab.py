"""BloSM's ledger on the emulated lab: validator + central on the control host, peer hosts on
the edges, the source's and the destination's probes on two edges -- all over Fabric, mTLS
from the lab CA, over the lab's shaped links.

    lab = LabLedger(state, connect, ca_dir, work_dir, source="edge1", destination="edge2")
    lab.setup()                          # deployment checks, certificates and temp dirs
    net = lab.start(peers=99, index=0)   # validator, central, direct, peer hosts; waits for N
    src = lab.probe(lab.source, net, role="source")   # a ProbeSession (JSON lines over SSH)
    ... src.call({"op": "ledger_write", ...}); lab.wire_bytes() ...
    lab.close()                          # kills every process it started, removes the dirs

Placement: the validator and the central baseline run on the control host; ``peers`` peer
identities are split over the edge hosts (`distribute`), one ``python -m agents.ledger``
process (scale mode) per edge; the direct two-node baseline (cost 1) is a metadata service on
the destination edge.  Everything is started with the deployed agents' interpreter, in the venv
each host's deployment manifest names (`edgeferry.deploy.manifest.HostManifest.python`: what
`edgeferry deploy` installed, the agents wheel with the probe), with a config written to a
``mktemp -d`` directory on the host; each host gets a certificate issued from the lab CA for its
name and lab address (key mode 0600).  The probes are ``python -m agents.ledger.probe``
(`probe_command`).

Bytes on the wire: the bridge-side veth of every lab host is read on this machine
(``/sys/class/net/<veth>/statistics/rx_bytes`` = Ethernet frames the host sent, so each frame
between two hosts counts once; TCP/IP, TLS and HTTP/2 overhead included).  Reading them sends
nothing.  The probes' own SSH traffic crosses the same veths: `noop_bytes` measures it (a
command round trip without gRPC) so callers can subtract it.
"""

from __future__ import annotations

import io
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeferry.deploy.manifest import load_manifest
from edgeferry.errors import OperationFailed
from edgeferry.hosts import run
from edgeferry.stats import median

PROBE_MODULE = "agents.ledger.probe"
ROLE_OFFSETS = {"validator": 0, "central": 1, "direct": 2, "peers": 3}
PORT_STRIDE = 10  # ports of network k: base + k * stride + offset


def lab_ca_dir(ctx: Any) -> Path:
    """The lab CA's folder of a scenario's lab (the deployed agents' CA); ScenarioUnavailable
    when the lab was never deployed."""
    from edgeferry.experiments.scenario import ScenarioUnavailable
    from edgeferry.workspace import state_root

    ca_dir = (Path(ctx.endpoints.tls.ca_cert).parent if ctx.endpoints.tls is not None
              else state_root() / "pki" / ctx.lab.name / "ca")
    if not (ca_dir / "ca.key").is_file():
        raise ScenarioUnavailable(f"no lab CA in {ca_dir}: run `edgeferry deploy -i "
                                  f"inventory/{ctx.lab.name}` first")
    return ca_dir


def distribute(peers: int, hosts: list[str]) -> dict[str, int]:
    """Peer identities per host: as even as possible, the first hosts get the remainder;
    hosts that would get none are left out."""
    if peers < 1 or not hosts:
        raise ValueError("need at least one peer and one host")
    out = {h: peers // len(hosts) + (1 if i < peers % len(hosts) else 0)
           for i, h in enumerate(hosts)}
    return {h: n for h, n in out.items() if n > 0}


def port_of(base: int, index: int, role: str) -> int:
    return base + index * PORT_STRIDE + ROLE_OFFSETS[role]


def peer_prefix(host: str, index: int) -> str:
    return f"{host}-net{index}"


#: The certificates each host gets (role -> the CN ``<role>.<host>``, agents.common.authz):
#: the control host runs the validator and the central service, an edge its peers, the
#: direct service and the probes (which write and read metadata as the SMF does).
CONTROL_CERTS = ("ledger-validator",)
EDGE_CERTS = ("ledger-peer", "smf")
#: The cloud of Figure 11 runs the central service (as the control host does) and a probe.
CLOUD_CERTS = ("ledger-validator", "smf")
#: The ledger node id of the source probe: the one id an ``smf.<host>`` certificate may
#: register (agents.ledger.policy.SMF_NODE_ID).
SOURCE_NODE_ID = "smf"


def agent_config(name: str, address: str, port: int, remote_dir: str, data: str,
                 settings: dict[str, Any], cert: str) -> dict[str, Any]:
    """The ``python -m agents.ledger`` config for one process on a lab host, presenting the
    host's certificate of role `cert` (``tls/<cert>.crt``)."""
    return {
        "name": name, "listen_host": address, "listen_port": port,
        "data_dir": f"{remote_dir}/{data}", "log_level": "WARNING", "max_workers": 32,
        "grace_seconds": 0.5,
        "tls": {"ca_cert": f"{remote_dir}/tls/ca.crt", "cert": f"{remote_dir}/tls/{cert}.crt",
                "key": f"{remote_dir}/tls/{cert}.key"},
        "settings": settings,
    }


def peer_settings(prefix: str, count: int, validator: str, authority_key: str
                  ) -> dict[str, Any]:
    return {"role": "peers", "node_id": prefix, "peers": count, "validator": validator,
            "authority_key": authority_key}


def probe_command(remote_dir: str, config: str, python: str) -> str:
    """The shell command that runs one probe on a host: the deployed interpreter `python` running
    `PROBE_MODULE` with its JSON config (stderr to ``<config>.log``, stdout unbuffered: the
    controller reads one JSON line per command)."""
    return (f"cd {shlex.quote(remote_dir)} && exec {shlex.quote(python)} -u -m {PROBE_MODULE} "
            f"{shlex.quote(config)} 2> {shlex.quote(config)}.log")


def destination_peer(prefix: str, count: int) -> str:
    from agents.ledger.agent import peer_ids

    return peer_ids(prefix, count)[-1]


@dataclass
class LabNetwork:
    """One running ledger (validator + peer hosts) with its central and direct baselines."""

    index: int
    peers: int
    validator: str
    central: str
    direct: str
    peer_hosts: dict[str, tuple[str, int]]  # host -> (address, identities)
    destination_peer: str
    authority_key: str
    items: int = 0  # metadata items written through this network (for storage per item)


class ProbeSession:
    """One ``python -m agents.ledger.probe`` process on a host, driven by JSON lines over an
    SSH channel."""

    def __init__(self, conn: Any, command: str, timeout_s: float = 300.0) -> None:
        conn.open()
        self.host = getattr(conn, "host", "?")
        self.chan = conn.client.get_transport().open_session()
        self.chan.settimeout(timeout_s)
        self.chan.exec_command(command)
        self._in = self.chan.makefile_stdin("wb")
        self._out = self.chan.makefile("r")
        first = self._line()
        if not first.get("ready"):
            raise OperationFailed(f"ledger probe on {self.host} did not start: "
                                  f"{first.get('error', first)}")
        self.pid = int(first["pid"])

    def _line(self) -> dict[str, Any]:
        line = self._out.readline()
        if not line:
            err = self.chan.makefile_stderr("r").read().decode(errors="replace")[-600:]
            raise OperationFailed(f"ledger probe on {self.host} exited: {err.strip()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self._in.write((json.dumps(cmd) + "\n").encode())
        self._in.flush()
        out = self._line()
        if not out.pop("ok_", False):
            raise OperationFailed(f"ledger probe on {self.host}: {cmd.get('op')}: "
                                  f"{out.get('error')}")
        return out

    def close(self) -> None:
        try:
            self._in.write(b'{"op": "quit"}\n')
            self._in.flush()
            self.chan.shutdown_write()
            deadline = time.monotonic() + 5
            while not self.chan.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.05)
        except Exception:
            pass
        self.chan.close()


@dataclass
class LabLedger:
    lab: Any  # edgeferry.lab.state.LabState
    connect: Callable[[str], Any]
    ca_dir: Path
    work_dir: Path
    source: str = "edge1"
    destination: str = "edge2"
    port_base: int = 50400
    log: Callable[[str], None] = print
    dirs: dict[str, str] = field(default_factory=dict)  # host -> remote temp dir
    pids: list[tuple[str, int, str]] = field(default_factory=list)  # host, pid, what
    probes: list[ProbeSession] = field(default_factory=list)
    networks: dict[int, LabNetwork] = field(default_factory=dict)
    veths: dict[str, str] = field(default_factory=dict)
    manifest_root: Path | None = None  # where the manifests are (load_manifest's root; None:
    # the workspace)
    pythons: dict[str, str] = field(default_factory=dict)  # host -> its agents' python (setup)
    nodes: dict[str, str] = field(default_factory=dict)  # host -> its node agent (setup)
    #: the central cloud of Figure 11 (an edge-role host of the lab file, behind its own shaped
    #: link): it runs the central service and stores uploaded containers, and hosts no peers.
    #: None: the central service runs on the control host.
    cloud: str | None = None

    # -- hosts --------------------------------------------------------------------------
    @property
    def control(self) -> str:
        return str(self.lab.hosts_by_role("control")[0])

    @property
    def edges(self) -> list[str]:
        """The edge hosts of the ledger (the cloud is none of them)."""
        return [h for h in self.lab.hosts_by_role("edge") if h != self.cloud]

    @property
    def central_host(self) -> str:
        return self.cloud or self.control

    @property
    def hosts(self) -> list[str]:
        return [self.control, *self.edges, *([self.cloud] if self.cloud else [])]

    def address(self, host: str) -> str:
        return str(self.lab.hosts[host]["address"])

    def _check_deployed(self, host: str) -> None:
        """The interpreter the host's deployment manifest names (ManifestError without one),
        present on the host, and the probe module where a probe runs."""
        manifest = load_manifest(Path(self.lab.inventory), host, self.manifest_root)
        python = self.pythons[host] = str(manifest.python())
        if "node" in manifest.agents:
            node = manifest.agent("node")
            self.nodes[host] = f"{node.address}:{node.port}"
        conn = self.connect(host)
        redeploy = (f"run without --skip-deploy (or `edgeferry deploy -i "
                    f"inventory/{self.lab.name}`)")
        if conn.run(shlex.join(["test", "-x", python]), hide=True, warn=True).exited != 0:
            raise OperationFailed(
                f"{host} has no {python}: the agents are not deployed there; {redeploy}")
        if host in (self.source, self.destination, self.cloud) and conn.run(
                shlex.join([python, "-m", PROBE_MODULE, "--help"]), hide=True,
                warn=True).exited != 0:
            raise OperationFailed(
                f"the agents deployed on {host} have no {PROBE_MODULE} (an older wheel); "
                f"{redeploy}")

    def setup(self) -> None:
        """Deployment checks, then certificates from the lab CA in a temp dir on every host."""
        from edgeferry.lab.links.veth import local_veth
        from edgeferry.pki import LabCA

        if self.cloud is not None and self.cloud not in self.lab.hosts_by_role("edge"):
            raise OperationFailed(f"cloud {self.cloud!r} is not an edge-role host of lab "
                                  f"{self.lab.name!r} (a host behind its own shaped link)")
        for host in (self.source, self.destination):
            if host not in self.edges:
                raise OperationFailed(f"{host!r} is not an edge host of lab {self.lab.name!r} "
                                      f"(edges: {', '.join(self.edges)})")
        for host in self.hosts:
            self._check_deployed(host)
        ca = LabCA.load(self.ca_dir)
        issued_dir = self.work_dir / "pki"
        self.controller_cert = ca.issue_client("controller", issued_dir)
        self.ca_cert = ca.cert_path
        for host in self.hosts:
            conn = self.connect(host)
            remote = run(conn, ["mktemp", "-d", "/tmp/edgeferry-ledger.XXXXXX"]).strip()
            self.dirs[host] = remote
            run(conn, ["install", "-d", "-m", "0700", f"{remote}/tls"])
            files = [(ca.cert_path, "ca.crt", "0644")]
            for role in (CONTROL_CERTS if host == self.control else
                         CLOUD_CERTS if host == self.cloud else EDGE_CERTS):
                cert = ca.issue(f"{role}.{host}", issued_dir, dns_names=(host,),
                                ip_addresses=(self.address(host),))
                files += [(cert.cert_path, f"{role}.crt", "0644"),
                          (cert.key_path, f"{role}.key", "0600")]
            for local, name, mode in files:
                dest = f"{remote}/tls/{name}"
                conn.put(io.BytesIO(Path(local).read_bytes()), dest)
                run(conn, ["chmod", mode, dest])
            iflink = run(conn, ["cat", "/sys/class/net/eth0/iflink"])
            self.veths[host] = local_veth(iflink)

    def _put_text(self, host: str, path: str, text: str) -> None:
        self.connect(host).put(io.BytesIO(text.encode()), path)

    def _spawn(self, host: str, name: str, config: dict[str, Any]) -> int:
        remote = self.dirs[host]
        path = f"{remote}/{name}.yaml"
        self._put_text(host, path, yaml.safe_dump(config, sort_keys=True))
        cmd = (f"cd {shlex.quote(remote)} && setsid nohup "
               f"{shlex.quote(self.pythons[host])} -m agents.ledger "
               f"--config {shlex.quote(path)} > {shlex.quote(remote)}/{name}.log 2>&1 "
               "< /dev/null & echo $!")
        pid = int(run(self.connect(host), ["sh", "-c", cmd]).strip())
        self.pids.append((host, pid, name))
        return pid

    def _alive(self, host: str, pid: int) -> bool:
        return bool(self.connect(host).run(f"kill -0 {pid}", hide=True, warn=True).exited == 0)

    def _log_tail(self, host: str, name: str) -> str:
        return run(self.connect(host), ["tail", "-n", "5", f"{self.dirs[host]}/{name}.log"],
                   check=False).strip()

    def _wait(self, cond: Callable[[], bool], what: str, host: str, pid: int, name: str,
              timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if not self._alive(host, pid):
                raise OperationFailed(f"{name} on {host} exited while waiting for {what}: "
                                      f"{self._log_tail(host, name)}")
            if time.monotonic() > deadline:
                raise OperationFailed(f"timed out waiting for {what} ({name} on {host}): "
                                      f"{self._log_tail(host, name)}")
            time.sleep(0.2)

    def channel(self, address: str) -> Any:
        from agents.common.client import secure_channel

        return secure_channel(address, self.ca_cert, self.controller_cert.cert_path,
                              self.controller_cert.key_path)

    def _validator_status(self, address: str) -> Any:
        from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
        from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

        ch = self.channel(address)
        try:
            return pb_grpc.LedgerServiceStub(ch).GetStatus(pb.GetStatusRequest(), timeout=5)
        finally:
            ch.close()

    # -- one network --------------------------------------------------------------------
    def start(self, peers: int, index: int) -> LabNetwork:
        """Validator, central, direct and the peer hosts of network ``index`` (own ports)."""
        import grpc

        if index in self.networks:
            return self.networks[index]
        ctl = self.control
        caddr = self.address(ctl)
        vport = port_of(self.port_base, index, "validator")
        validator = f"{caddr}:{vport}"
        vname = f"net{index}-validator"
        vpid = self._spawn(ctl, vname, agent_config(
            "ledger", caddr, vport, self.dirs[ctl], f"{vname}-data",
            {"role": "validator", "node_id": "validator"}, "ledger-validator"))
        pub = f"{self.dirs[ctl]}/{vname}-data/keys/validator.pub.hex"

        def has_key() -> bool:
            return bool(self.connect(ctl).run(f"test -s {pub}", hide=True, warn=True).exited == 0)

        self._wait(has_key, "the validator's public key", ctl, vpid, vname)
        authority = run(self.connect(ctl), ["cat", pub]).strip()

        def answers() -> bool:
            try:
                self._validator_status(validator)
                return True
            except grpc.RpcError:
                return False

        self._wait(answers, "the validator to answer", ctl, vpid, vname)
        cport = port_of(self.port_base, index, "central")
        cname = f"net{index}-central"
        chost = self.central_host
        self._spawn(chost, cname, agent_config("ledger", self.address(chost), cport,
                                               self.dirs[chost], f"{cname}-data",
                                               {"role": "central"}, "ledger-validator"))
        dest = self.destination
        dport = port_of(self.port_base, index, "direct")
        dname = f"net{index}-direct"
        self._spawn(dest, dname, agent_config("ledger", self.address(dest), dport,
                                              self.dirs[dest], f"{dname}-data",
                                              {"role": "central"}, "smf"))
        pport = port_of(self.port_base, index, "peers")
        counts = distribute(peers, self.edges)
        started = []
        for host, count in counts.items():
            pname = f"net{index}-peers"
            settings = peer_settings(peer_prefix(host, index), count, validator, authority)
            pid = self._spawn(host, pname, agent_config(
                "ledger", self.address(host), pport, self.dirs[host], f"{pname}-data",
                settings, "ledger-peer"))
            started.append((host, pid, pname))
        self.log(f"ledger network {index}: validator on {ctl}, central on {chost}, "
                 + ", ".join(f"{n} peers on {h}" for h, n in counts.items())
                 + f", direct service on {dest}; waiting for {peers} registrations")
        deadline = time.monotonic() + 300
        while int(self._validator_status(validator).total_nodes) < peers:
            for host, pid, pname in started:
                if not self._alive(host, pid):
                    raise OperationFailed(f"{pname} on {host} exited: "
                                          f"{self._log_tail(host, pname)}")
            if time.monotonic() > deadline:
                raise OperationFailed(f"only {self._validator_status(validator).total_nodes} "
                                      f"of {peers} peers registered within 300 s")
            time.sleep(0.5)
        net = LabNetwork(
            index=index, peers=peers, validator=validator,
            central=f"{self.address(chost)}:{cport}",
            direct=f"{self.address(dest)}:{dport}",
            peer_hosts={h: (f"{self.address(h)}:{pport}", n) for h, n in counts.items()},
            destination_peer=destination_peer(peer_prefix(dest, index), counts[dest])
            if dest in counts else "",
            authority_key=authority)
        if not net.destination_peer:
            raise OperationFailed(f"the destination {dest} hosts no peer with {peers} peers")
        self.networks[index] = net
        return net

    # -- probes -------------------------------------------------------------------------
    def probe(self, host: str, net: LabNetwork, role: str) -> ProbeSession:
        remote = self.dirs[host]
        cfg: dict[str, Any] = {
            "tls": {"ca_cert": f"{remote}/tls/ca.crt", "cert": f"{remote}/tls/smf.crt",
                    "key": f"{remote}/tls/smf.key"},
            "node_id": SOURCE_NODE_ID if role == "source" else f"{role}@{host}",
            "direct": net.direct, "central": net.central, "address": self.address(host),
        }
        if host in self.nodes:
            cfg["node"] = self.nodes[host]
        if role == "source":
            cfg["validator"] = net.validator
        elif role != "cloud":  # a destination reads the replica of a peer on its host
            cfg["replica"] = net.peer_hosts[host][0]
            cfg["replica_peer"] = destination_peer(peer_prefix(host, net.index),
                                                   net.peer_hosts[host][1])
        path = f"{remote}/probe-net{net.index}-{role}.json"
        self._put_text(host, path, json.dumps(cfg))
        session = ProbeSession(self.connect(host), probe_command(remote, path, self.pythons[host]))
        self.probes.append(session)
        self.pids.append((host, session.pid, f"probe {role}"))
        return session

    # -- measurements -------------------------------------------------------------------
    def wire_bytes(self) -> int:
        """Ethernet bytes all lab hosts have sent so far (bridge-side veth rx counters)."""
        return sum(sent for sent, _received in self.link_counters().values())

    def link_counters(self) -> dict[str, tuple[int, int]]:
        """Per host: (bytes it sent, bytes it received) so far -- its bridge-side veth's rx and
        tx counters."""
        out = {}
        for host, veth in self.veths.items():
            stats = Path(f"/sys/class/net/{veth}/statistics")
            out[host] = (int((stats / "rx_bytes").read_text()),
                         int((stats / "tx_bytes").read_text()))
        return out

    def measured(self, fn: Callable[[], Any]) -> tuple[Any, int]:
        before = self.wire_bytes()
        out = fn()
        return out, self.wire_bytes() - before

    def noop_bytes(self, session: ProbeSession, samples: int = 5) -> float:
        """Median wire bytes of one probe round trip that sends no gRPC (the SSH channel's
        own traffic, to subtract from a command's window)."""
        return float(median(self.measured(lambda: session.call({"op": "noop"}))[1]
                                       for _ in range(samples)))

    def noop_link_bytes(self, host: str, session: ProbeSession,
                        samples: int = 5) -> tuple[int, int]:
        """Median (sent, received) bytes on `host`'s link of one probe round trip that sends no
        gRPC: `noop_bytes` per host and direction."""
        sent, received = [], []
        for _ in range(samples):
            before = self.link_counters()
            session.call({"op": "noop"})
            after = self.link_counters()
            sent.append(after[host][0] - before[host][0])
            received.append(after[host][1] - before[host][1])
        return round(median(sent)), round(median(received))

    def storage(self, net: LabNetwork) -> dict[str, Any]:
        """Stored metadata bytes: ledger (validator + every replica: block bodies), central
        and direct (signed records), from the processes' own stores."""
        from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2 as pb
        from agents._proto.edgeferry.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

        vstat = self._validator_status(net.validator)
        replicas = 0
        for address, _n in net.peer_hosts.values():
            ch = self.channel(address)
            try:
                replicas += int(pb_grpc.LedgerPeerServiceStub(ch).GetStatus(
                    pb.GetStatusRequest(), timeout=10).stored_bytes)
            finally:
                ch.close()
        out = {"ledger_validator": int(vstat.stored_bytes), "ledger_replicas": replicas}
        query = ("import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); print(*d.execute("
                 "'SELECT COUNT(*), COALESCE(SUM(LENGTH(body)),0) FROM metadata').fetchone())")
        for role, host in (("central", self.central_host), ("direct", self.destination)):
            db = f"{self.dirs[host]}/net{net.index}-{role}-data/central.sqlite3"
            rows, size = run(self.connect(host), [self.pythons[host], "-c", query, db]).split()
            out[f"{role}_rows"], out[role] = int(rows), int(size)
        return out

    # -- teardown -------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop every probe and process started here, remove the temp dirs; returns problems
        (never raises: it runs after failures too)."""
        problems: list[str] = []
        for session in self.probes:
            session.close()
        self.probes.clear()
        by_host: dict[str, list[int]] = {}
        for host, pid, _what in self.pids:
            by_host.setdefault(host, []).append(pid)
        for host, pids in by_host.items():
            plist = " ".join(str(p) for p in pids)
            script = (f"kill {plist} 2>/dev/null; for i in $(seq 50); do "
                      f"kill -0 {plist} 2>/dev/null || break; sleep 0.1; done; "
                      f"kill -9 {plist} 2>/dev/null; true")
            try:
                self.connect(host).run(script, hide=True, warn=True)
            except Exception as err:
                problems.append(f"{host}: stopping {plist}: {err}")
        self.pids.clear()
        for host, remote in self.dirs.items():
            try:
                run(self.connect(host), ["rm", "-rf", remote])
            except Exception as err:
                problems.append(f"{host}: removing {remote}: {err}")
        self.dirs.clear()
        self.networks.clear()
        return problems
