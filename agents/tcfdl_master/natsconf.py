"""nats-server configuration for one TCFDL cluster (domain: text in, text out, no I/O).

Each cluster runs its own nats-server (Debian's nats-server 2.9):

* client connections only over TLS with the lab CA, client certificates required and mapped to
  users (``verify_and_map``): a connection is the user its certificate's subject names
  (``CN=<cn>,O=edgeferry``); there is no anonymous user and no password;
* one account ``TCFDL`` holding that cluster's users, with per-role permissions (the master
  routes, proxies never connect, workers answer on their own instance subject, clients submit to
  their cluster);
* JetStream enabled (file store, domain = the cluster name), for the acknowledged task queue;
* clusters joined by NATS gateways (TLS with the lab CA both ways), so a subject published in
  cluster A reaches cluster B's subscribers and replies find their way back.

Subjects (`subjects`): ``tcfdl.in.<cluster>.<fn>`` (a client's task to its master),
``tcfdl.x.<cluster>.<fn>`` (a task forwarded to that cluster's master), ``tcfdl.inst.<cn>``
(one instance), ``tcfdl.q.<cluster>.<fn>`` (the JetStream queue), ``tcfdl.r.<cluster>.<client>``
(queued results), ``tcfdl.probe.<cn>`` (one instance's bare request/reply: the baseline a
task's latency is compared to; it answers zero bytes, never more than the request carried).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.security.tcfdl.names import CLUSTER_PATTERN

ACCOUNT = "TCFDL"
#: largest NATS message (a MAX_FRAME_SIZE task frame plus headers); nats-server refuses more
MAX_PAYLOAD = 9 * 1024 * 1024
#: the O of every lab-CA certificate (edgeferry.pki.ORGANIZATION)
ORGANIZATION = "edgeferry lab"
_NAME = re.compile(CLUSTER_PATTERN)
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_cluster(name: str) -> str:
    """A cluster name (lowercase letters, digits, '-'; at most 32); ValueError otherwise."""
    if not _NAME.match(name):
        raise ValueError(f"cluster name {name!r}: use 1-32 lowercase letters, digits or '-'")
    return name


def dn(cn: str, organization: str = ORGANIZATION, role_unit: bool = False) -> str:
    """The RFC 2253 subject a lab-CA certificate of CN `cn` maps to (the NATS user name).

    `role_unit`: the certificate also carries OU=<role> (the role part of `cn`, as the
    deployment's pki role issues them: ``CN=tcfdl-master.edge1,OU=tcfdl-master,O=edgeferry``).
    """
    if not _CN.match(cn):
        raise ValueError(f"certificate CN {cn!r} is not a lab identity")
    if role_unit:
        return f"CN={cn},OU={cn.split('.', 1)[0]},O={organization}"
    return f"CN={cn},O={organization}"


def token(cn: str) -> str:
    """`cn` as one NATS subject token ('.' is the token separator)."""
    return cn.replace(".", "_")


class Subjects:
    """The subjects of the TCFDL overlay."""

    @staticmethod
    def ingress(cluster: str, function: str) -> str:
        """A client's task for `function`, to its own cluster's master."""
        return f"tcfdl.in.{cluster}.{function}"

    @staticmethod
    def transit(cluster: str, function: str) -> str:
        """A task forwarded to `cluster`'s master."""
        return f"tcfdl.x.{cluster}.{function}"

    @staticmethod
    def instance(cn: str) -> str:
        """One function instance (worker process `cn`)."""
        return f"tcfdl.inst.{token(cn)}"

    @staticmethod
    def probe(cn: str) -> str:
        """One instance's bare request/reply (no master, no cryptography, no function)."""
        return f"tcfdl.probe.{token(cn)}"

    @staticmethod
    def queue(cluster: str, function: str) -> str:
        """The JetStream task queue of `cluster`."""
        return f"tcfdl.q.{cluster}.{function}"

    @staticmethod
    def results(cluster: str, client_cn: str) -> str:
        """Queued results for one client."""
        return f"tcfdl.r.{cluster}.{token(client_cn)}"


def stream_names(cluster: str) -> tuple[str, str]:
    """(task stream, result stream) of `cluster`'s JetStream."""
    up = cluster.upper().replace("-", "_")
    return f"TCFDL_Q_{up}", f"TCFDL_R_{up}"


@dataclass(frozen=True)
class Hub:
    """The leaf-node endpoint of the hub cluster this cluster's server joins."""

    cluster: str
    url: str  # host:port


@dataclass(frozen=True)
class ClusterNats:
    """Everything one cluster's server configuration needs."""

    cluster: str
    listen: str  # host:port for clients
    server_cert: Path
    server_key: Path
    ca_cert: Path
    store_dir: Path
    masters: Sequence[str] = ()  # certificate CNs
    workers: Sequence[str] = ()
    clients: Sequence[str] = ()
    leaf_listen: str = ""  # host:port where other clusters' servers join this one (the hub)
    hubs: Sequence[Hub] = field(default_factory=tuple)  # hubs this server joins as a leaf
    #: other clusters' server certificates (CNs) allowed to join as leaf nodes (hub side)
    leaves: Sequence[str] = ()
    monitor_port: int = 0  # 0: no monitoring endpoint
    #: the O of the certificates' subjects, and whether they carry OU=<role> (see `dn`)
    organization: str = ORGANIZATION
    role_unit: bool = False


def _q(value: str) -> str:
    return json.dumps(value)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _user(c: ClusterNats, cn: str, publish: Sequence[str], subscribe: Sequence[str],
          responses: bool) -> str:
    allow = "allow_responses: {max: 1, expires: \"60s\"}, " if responses else ""
    name = dn(cn, c.organization, c.role_unit)
    return (f"      {{user: {_q(name)}, permissions: {{{allow}"
            f"publish: {{allow: {_list(publish)}}}, subscribe: {{allow: {_list(subscribe)}}}}}}}")


def client_publish(cluster: str, cn: str) -> list[str]:
    """What a client may publish: tasks to its cluster (request/reply and the queue), bare
    requests to any instance's probe, and the JetStream API of its own result consumer only
    (``client-<cn>`` on the result stream)."""
    _, results = stream_names(cluster)
    durable = f"client-{token(cn)}"
    out = [f"tcfdl.in.{cluster}.>", f"tcfdl.q.{cluster}.>", "tcfdl.probe.>",
           f"$JS.ACK.{results}.{durable}.>"]
    for api in ("$JS.API", f"$JS.{cluster}.API"):  # nats-py uses both (domain or not)
        out += [f"{api}.CONSUMER.*.{results}.{durable}",
                f"{api}.CONSUMER.*.{results}.{durable}.>",
                f"{api}.CONSUMER.MSG.NEXT.{results}.{durable}"]
    return out


def users(c: ClusterNats) -> list[str]:
    """The account's user entries, one per certificate, with its role's permissions."""
    js = "$JS.API.>"
    jsd = f"$JS.{c.cluster}.API.>"
    out = [_user(c, m, ["tcfdl.>", "_INBOX.>", js, jsd, "$JS.ACK.>"],
                 [f"tcfdl.in.{c.cluster}.>", f"tcfdl.x.{c.cluster}.>", "_INBOX.>"], False)
           for m in c.masters]
    out += [_user(c, w, [], [Subjects.instance(w), Subjects.probe(w)], True) for w in c.workers]
    out += [_user(c, cl, client_publish(c.cluster, cl), ["_INBOX.>"], False) for cl in c.clients]
    # another cluster's server: task and reply subjects only, never this cluster's JetStream
    leaf_subjects = ["tcfdl.x.>", "tcfdl.inst.>", "tcfdl.probe.>", "_INBOX.>", "_R_.>"]
    out += [_user(c, leaf, leaf_subjects, leaf_subjects, False)
            for leaf in c.leaves]
    return out


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{value!r}: expected host:port")
    return host.strip("[]"), int(port)


def render(c: ClusterNats) -> str:
    """The nats-server configuration text of cluster `c`."""
    check_cluster(c.cluster)
    host, port = _hostport(c.listen)
    if not (c.masters or c.workers or c.clients):
        raise ValueError(f"cluster {c.cluster}: no users (masters, workers, clients)")
    files = (f"cert_file: {_q(str(c.server_cert))}, key_file: {_q(str(c.server_key))}, "
             f"ca_file: {_q(str(c.ca_cert))}")
    lines = [
        f"# TCFDL cluster {c.cluster}: generated by agents.tcfdl_master.natsconf; do not edit",
        f"server_name: {_q('tcfdl-' + c.cluster)}",
        f"host: {_q(host)}",
        f"port: {port}",
        f"max_payload: {MAX_PAYLOAD}",
        "max_pending: 67108864",
        f"tls {{ {files}, verify_and_map: true, timeout: 5 }}",
        f"jetstream {{ store_dir: {_q(str(c.store_dir))}, domain: {_q(c.cluster)}, "
        "max_memory_store: 268435456, max_file_store: 1073741824 }",
        "accounts {",
        f"  {ACCOUNT}: {{",
        "    jetstream: enabled",
        "    users: [",
        ",\n".join(users(c)),
        "    ]",
        "  }",
        "}",
    ]
    if c.leaf_listen or c.hubs:
        lines.append("leafnodes {")
        if c.leaf_listen:
            lhost, lport = _hostport(c.leaf_listen)
            lines += [f"  host: {_q(lhost)}", f"  port: {lport}",
                      f"  tls {{ {files}, verify_and_map: true, timeout: 5 }}"]
        if c.hubs:
            remotes = ",\n".join(
                f"    {{url: {_q('tls://' + h.url)}, account: {_q(ACCOUNT)}, "
                f"tls: {{ {files} }}}}" for h in c.hubs)
            lines += ["  remotes: [", remotes, "  ]"]
        lines.append("}")
    if c.monitor_port:
        lines.insert(4, f"http: \"127.0.0.1:{c.monitor_port}\"")
    return "\n".join(lines) + "\n"
