"""`edgeferry smf ...`: the Service Management Framework (seed 000, section 7.8) for people.

Every command talks to the agents over mutual TLS; connection flags also come from the
environment: EDGEFERRY_SMF (host:port), EDGEFERRY_RAS, EDGEFERRY_CA_CERT, EDGEFERRY_CERT,
EDGEFERRY_KEY.

    edgeferry smf keygen cms --out cms.key                  # a protocol identity (+ cms.key.pub)
    edgeferry smf register-cms --identity cms.key.pub
    edgeferry smf ras-register --identity edge1/keys/rasp-endpoint.pub --cpu 4000 --memory 4096 \
        --storage 20000 --network 1000                      # a host as RAS cloud and server
    edgeferry smf register-service nms --version 1 --cms-key cms.key --cpu 500 --memory 256 \
        --server 10.10.0.11:50070=edge1/keys/rasp-endpoint.pub --image registry.lab:5000/nms:1
    edgeferry smf add-server SERVICE_ID --server 10.10.0.12:50070=edge2.pub --max-load 10
    edgeferry smf keygen app --out app.key                  # the application's key
    edgeferry smf register-user Ada Lovelace --role driver --rank 3 --app-identity app.key.pub \
        --cap-out ada.cap                                   # USER CAP bound to the app's key
    edgeferry smf register-device phone --owner Ada Lovelace --app-identity app.key.pub \
        --cap-out phone.cap                                 # DEV CAP: owner Ada, same key
    edgeferry smf request-service nms --version 1 --user-cap ada.cap --device-cap phone.cap \
        --app-key app.key --send "read block 7"
    edgeferry smf reissue-cap user USER_ID [--app-identity new.pub] --cap-out ada2.cap
    edgeferry smf revoke-cap device DEVICE_ID
    edgeferry smf migrate SERVICE_ID --to edge2 --user U --device D --user-cap ada.cap \
        --device-cap phone.cap
    edgeferry smf migrate SERVICE_ID --region regionB ... | --any [--audit-seed N] ...
                                                        # seed 002: the audit picks the edge
    edgeferry smf services | users | devices | show SERVICE_ID | ras-table

Exit codes: 0 success, 1 refused or failed, 2 bad input, 3 agent unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from agents.common.keys import read_public_identity
from agents.node.client import SspServerClient
from agents.ras.client import RasClient
from agents.security.capability import SealedCapability
from agents.security.crypto import Identity, PublicIdentity, write_private_file
from agents.security.errors import ProtocolError
from agents.security.rasp import Resources
from agents.smf.client import (
    ApplicationSession,
    PhaseTiming,
    ServerSpec,
    SmfClient,
    register_service_as_cms,
)
from edgeferry.cli.connection import channel, rpc_errors, tls_options
from edgeferry.cli.output import echo_json, json_option
from edgeferry.errors import ConfigError, OperationFailed

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------------------------
# connections
# --------------------------------------------------------------------------------------------

def _smf_options(fn: F) -> F:
    fn = click.option("--smf", "smf_target", envvar="EDGEFERRY_SMF", metavar="HOST:PORT",
                      help="SMF agent (env EDGEFERRY_SMF).")(fn)
    return tls_options(fn)


def _smf(conn: dict[str, Any]) -> SmfClient:
    return SmfClient(channel(conn["smf_target"], "smf", conn["ca_cert"], conn["cert"],
                             conn["key"]))


def _read_cap(path: Path) -> SealedCapability:
    try:
        return SealedCapability.parse(path.read_text().strip())
    except OSError as err:
        raise ConfigError(f"cannot read capability file {path}: {err.strerror}") from None
    except ProtocolError as err:
        raise ConfigError(f"{path} is not a sealed capability: {err.message}") from None


def _write_cap(path: Path | None, cap: SealedCapability) -> None:
    if path is None:
        return
    try:
        write_private_file(path, (cap.to_text() + "\n").encode())
    except FileExistsError:
        raise ConfigError(f"{path} exists; choose another --cap-out") from None


def _public(path: Path) -> PublicIdentity:
    from agents.common.errors import AgentError

    try:
        return read_public_identity(path)
    except AgentError as err:
        raise ConfigError(str(err)) from None


def _app_key(path: Path) -> Identity:
    try:
        return Identity.load(path)
    except (OSError, ProtocolError) as err:
        raise ConfigError(f"cannot load --app-key {path}: {err}") from None


def _server_spec(value: str) -> ServerSpec:
    address, sep, pub = value.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not colon or not port.isdigit() or not host:
        raise ConfigError(f"--server {value!r}: expected IP:PORT=PUBLIC_IDENTITY_FILE")
    return ServerSpec(_public(Path(pub)), host, int(port))


def _resources(cpu: int, memory: int, storage: int, network: int) -> Resources:
    try:
        return Resources(cpu, memory, storage, network)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _resource_options(fn: F) -> F:
    for name, unit in (("network", "Mbit/s"), ("storage", "MiB"), ("memory", "MiB"),
                       ("cpu", "millicores")):
        fn = click.option(f"--{name}", type=click.IntRange(min=0), default=0,
                          show_default=True, help=f"{name.capitalize()} in {unit}.")(fn)
    return fn


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------

@click.group(name="smf")
def smf() -> None:
    """Service Management Framework: register services, users, devices and servers, request
    services (SSP) and migrate them (RASP)."""


@smf.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Private key file to create (0600); the public part goes to OUT.pub.")
def keygen(name: str, out: Path) -> None:
    """Create a protocol identity NAME (Ed25519 + X25519), e.g. for the CMS or an app."""
    if out.exists():
        raise ConfigError(f"{out} exists; refusing to overwrite a key")
    identity = Identity.generate(name)
    identity.save(out)
    pub = out.with_name(out.name + ".pub")
    pub.write_bytes(identity.public.to_bytes())
    click.echo(f"identity {name}: private key {out} (0600), public identity {pub}")
    click.echo(f"fingerprint {identity.public.fingerprint().hex()[:32]}")


@smf.command("register-cms")
@click.option("--identity", type=click.Path(path_type=Path), required=True,
              help="The CMS's public identity file.")
@_smf_options
def register_cms(identity: Path, **conn: Any) -> None:
    """Trust a Cloud Management System for Register Service."""
    public = _public(identity)
    with rpc_errors("register-cms"):
        _smf(conn).register_cms(public)
    click.echo(f"CMS {public.name} registered")


@smf.command("register-service")
@click.argument("name")
@click.option("--version", "version", default="0", show_default=True,
              help="Service version (0 = latest).")
@click.option("--cms-key", type=click.Path(path_type=Path), required=True,
              help="The CMS's private identity (from `smf keygen`).")
@click.option("--server", "servers", multiple=True, required=True,
              metavar="IP:PORT=PUBFILE", help="A server of the service (repeatable).")
@click.option("--description", default="", help="What the service does.")
@click.option("--local-id", default="", help="The CMS's local id for the service.")
@click.option("--port", "service_port", type=click.IntRange(0, 65535), default=0,
              help="TCP/UDP port of the service.")
@click.option("--transport", type=click.Choice(["tcp", "udp"]), default="tcp")
@click.option("--image", default="", help="Container image the service runs from.")
@_resource_options
@_smf_options
def register_service(name: str, version: str, cms_key: Path, servers: tuple[str, ...],
                     description: str, local_id: str, service_port: int, transport: str,
                     image: str, cpu: int, memory: int, storage: int, network: int,
                     **conn: Any) -> None:
    """Register Service (SSP steps 1-2) and hand SERV ID + SERV CAP to its servers."""
    try:
        cms = Identity.load(cms_key)
    except (OSError, ProtocolError) as err:
        raise ConfigError(f"cannot load --cms-key {cms_key}: {err}") from None
    specs = [_server_spec(s) for s in servers]
    client = _smf(conn)

    def provision(spec: ServerSpec) -> SspServerClient:
        return SspServerClient(channel(f"{spec.ip}:{spec.port}", "server", conn["ca_cert"],
                                       conn["cert"], conn["key"]))

    with rpc_errors("register-service"):
        service_id, cap = register_service_as_cms(
            client, cms, client.identity(), name, version, specs, provision=provision,
            description=description, local_id=local_id, port=service_port,
            transport=transport, requirement=_resources(cpu, memory, storage, network),
            image_ref=image)
    click.echo(f"service {name} {version} registered: SERV ID {service_id}")
    click.echo(f"SERV CAP {cap.cap.text()}  (provisioned on {len(specs)} server(s))")


@smf.command("add-server")
@click.argument("service_id")
@click.option("--server", "server", required=True, metavar="IP:PORT=PUBFILE",
              help="The server's endpoint and public identity.")
@click.option("--global-id", default="", help="Server global id from the CMS / NMS.")
@click.option("--max-load", type=click.IntRange(min=0), default=0, help="Maximum load.")
@_smf_options
def add_server(service_id: str, server: str, global_id: str, max_load: int,
               **conn: Any) -> None:
    """Add Server to a registered service and provision SERV CAP on it."""
    spec = _server_spec(server)
    with rpc_errors("add-server"):
        sid, cap = _smf(conn).add_server(service_id, spec.public, spec.ip, spec.port,
                                         server_global_id=global_id, max_load=max_load)
        SspServerClient(channel(f"{spec.ip}:{spec.port}", "server", conn["ca_cert"],
                                conn["cert"], conn["key"])).provision(sid, cap)
    click.echo(f"server {spec.public.name} ({spec.ip}:{spec.port}) added to {sid}")


@smf.command("register-user")
@click.argument("first_name")
@click.argument("surname")
@click.option("--role", default="", help="Role, e.g. driver.")
@click.option("--rank", type=click.IntRange(0, 4095), default=0, help="Rank (0-4095).")
@click.option("--specialisation", default="")
@click.option("--app-identity", type=click.Path(path_type=Path), required=True,
              help="Public identity of the application the USER CAP is bound to.")
@click.option("--cap-out", type=click.Path(path_type=Path), default=None,
              help="Write USER CAP (sealed, text) to this new file (0600).")
@_smf_options
def register_user(first_name: str, surname: str, role: str, rank: int, specialisation: str,
                  app_identity: Path, cap_out: Path | None, **conn: Any) -> None:
    """Register User: prints the global id and USER CAP."""
    holder = _public(app_identity)
    with rpc_errors("register-user"):
        gid, cap = _smf(conn).register_user(first_name, surname, holder=holder, role=role,
                                            rank=rank, specialisation=specialisation)
    _write_cap(cap_out, cap)
    click.echo(f"user {first_name} {surname}: global id {gid}")
    click.echo(f"USER CAP {cap.cap.text()}" + (f"  (saved to {cap_out})" if cap_out else ""))


@smf.command("register-device")
@click.argument("name")
@click.option("--owner", nargs=2, required=True, metavar="FIRST SURNAME",
              help="The owner's first name and surname.")
@click.option("--owner-id", default="", help="The owner's global user id (default: the one "
              "user with the owner's names).")
@click.option("--local-id", default="", help="Local device id (default: one is made).")
@click.option("--app-identity", type=click.Path(path_type=Path), required=True,
              help="Public identity of the application the DEV CAP is bound to.")
@click.option("--cap-out", type=click.Path(path_type=Path), default=None,
              help="Write DEV CAP (sealed, text) to this new file (0600).")
@_smf_options
def register_device(name: str, owner: tuple[str, str], owner_id: str, local_id: str,
                    app_identity: Path, cap_out: Path | None, **conn: Any) -> None:
    """Register Device: prints the global and local ids and DEV CAP."""
    holder = _public(app_identity)
    with rpc_errors("register-device"):
        gid, lid, cap = _smf(conn).register_device(name, owner[0], owner[1], holder=holder,
                                                   local_id=local_id, owner_user_id=owner_id)
    _write_cap(cap_out, cap)
    click.echo(f"device {name}: global id {gid}, local id {lid}")
    click.echo(f"DEV CAP {cap.cap.text()}" + (f"  (saved to {cap_out})" if cap_out else ""))


@smf.command("request-service")
@click.argument("name")
@click.option("--version", "version", default="0", show_default=True)
@click.option("--user-cap", type=click.Path(path_type=Path), required=True)
@click.option("--device-cap", type=click.Path(path_type=Path), required=True)
@click.option("--app-key", type=click.Path(path_type=Path), required=True,
              help="The application's private identity (the key the capabilities name).")
@click.option("--send", "requests", multiple=True, help="A service request (repeatable).")
@_smf_options
def request_service(name: str, version: str, user_cap: Path, device_cap: Path, app_key: Path,
                    requests: tuple[str, ...], **conn: Any) -> None:
    """Request Service and run an SSP session (steps 3-11): prints the chosen server, the
    answers (hex) and the time of each stage."""
    client = _smf(conn)
    app = _app_key(app_key)
    with rpc_errors("request-service"):
        session = ApplicationSession(
            app, client, client.identity(), _read_cap(user_cap),
            _read_cap(device_cap),
            lambda address: channel(address, "server", conn["ca_cert"], conn["cert"], conn["key"]))
        with session:
            session.open(name, version)
            click.echo(f"session open with {session.server_address}")
            for text in requests:
                result = session.request(text.encode())
                click.echo(f"  {text!r} -> {result.hex()}")
    for stage, seconds in session.timings.items():
        click.echo(f"{stage}: {seconds * 1000:.2f} ms")
    click.echo("session ended; CAP SESS revoked by the server")


@smf.command("reissue-cap")
@click.argument("kind", type=click.Choice(["user", "device"]))
@click.argument("global_id")
@click.option("--app-identity", type=click.Path(path_type=Path), default=None,
              help="Bind the new capability to this application (default: the same key).")
@click.option("--cap-out", type=click.Path(path_type=Path), default=None,
              help="Write the new capability (sealed, text) to this new file (0600).")
@_smf_options
def reissue_cap(kind: str, global_id: str, app_identity: Path | None, cap_out: Path | None,
                **conn: Any) -> None:
    """A new USER CAP / DEV CAP with a new expiry; the old one is revoked."""
    holder = None if app_identity is None else _public(app_identity)
    with rpc_errors("reissue-cap"):
        cap = _smf(conn).reissue_capability(kind, global_id, holder=holder)
    _write_cap(cap_out, cap)
    click.echo(f"{kind} {global_id}: new capability {cap.cap.text()}, expires at "
               f"{cap.expires_at_ms} ms" + (f"  (saved to {cap_out})" if cap_out else ""))


@smf.command("revoke-cap")
@click.argument("kind", type=click.Choice(["user", "device"]))
@click.argument("global_id")
@_smf_options
def revoke_cap(kind: str, global_id: str, **conn: Any) -> None:
    """Revoke a USER CAP / DEV CAP (refused as REVOKED until reissued)."""
    with rpc_errors("revoke-cap"):
        _smf(conn).revoke_capability(kind, global_id)
    click.echo(f"{kind} {global_id}: capability revoked")


@smf.command()
@click.argument("service_id")
@click.option("--to", "destination", default="", help="Destination server name.")
@click.option("--region", default="",
              help="Seed 002 case 2: the first edge of this region the audit permits, tried in "
                   "the audit's seeded random order (needs the SMF's audit).")
@click.option("--any", "any_edge", is_flag=True,
              help="Seed 002 case 3: the first edge of any region the audit permits.")
@click.option("--audit-seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Seed of the audit's order of tries (--region / --any; default: drawn).")
@click.option("--user", "user_id", required=True, help="Global user id.")
@click.option("--device", "device_id", required=True, help="Global device id.")
@click.option("--user-cap", type=click.Path(path_type=Path), required=True)
@click.option("--device-cap", type=click.Path(path_type=Path), required=True)
@click.option("--request-id", default="")
@click.option("--order", type=click.Choice(["diff", "direct", "paper"]), default="diff",
              show_default=True,
              help="Phase order: diff-first (only the committed diff moves while the service "
                   "is down), direct (diff-first, the diff relayed from engine to engine "
                   "without the registry) or the paper's (stop first; fidelity runs).")
@json_option
@_smf_options
def migrate(service_id: str, destination: str, region: str, any_edge: bool,
            audit_seed: int | None, user_id: str, device_id: str, user_cap: Path,
            device_cap: Path, request_id: str, order: str, as_json: bool, **conn: Any) -> None:
    """Migrate Service to another server (RASP + location commit); prints each phase as it
    ends (on stderr with --json, whose stdout stays the report), then the table of phases.
    With --region / --any the audit agent orders the tries and the first permitted edge is
    the destination; the tries are printed with the decision on each."""
    if sum((bool(destination), bool(region), any_edge)) != 1:
        raise click.UsageError("give exactly one of --to, --region, --any")
    if audit_seed is not None and destination:
        raise click.UsageError("--audit-seed goes with --region / --any")
    def progress(p: PhaseTiming) -> None:
        click.echo(f"  {p.phase:<22} {p.outcome:<8} {p.wall_seconds * 1000:10.2f} ms",
                   err=as_json)

    with rpc_errors("migrate"):
        report = _smf(conn).migrate(service_id, user_id, device_id, _read_cap(user_cap),
                                    _read_cap(device_cap), destination, request_id=request_id,
                                    order=order, region=region, any_edge=any_edge,
                                    audit_seed=audit_seed, on_phase=progress)
    if as_json:
        echo_json(report)
        if not report.migrated:
            raise OperationFailed(f"migration failed: {report.error_message}")
        return
    if region or any_edge:
        click.echo(f"audit tries ({f'region {region}' if region else 'any edge'}, seed "
                   f"{report.audit_seed}, decision {report.audit_seconds * 1000:.3f} ms):")
        _table([(str(i), edge, "permit" if ok else "deny", "; ".join(why))
                for i, (edge, ok, why) in enumerate(report.tries, 1)],
               ("#", "edge", "decision", "reasons"))
    click.echo(f"phase order {report.order or order}")
    _table([(p.phase, f"{p.wall_seconds * 1000:.2f}", str(p.bytes_moved), p.outcome, p.detail)
            for p in report.phases], ("phase", "ms", "bytes", "outcome", "detail"))
    if not report.migrated:
        raise OperationFailed(f"migration failed: {report.error_message}; the service stays "
                              f"on {report.location} (epoch {report.epoch})")
    click.echo(f"{service_id} now runs on {report.location} (epoch {report.epoch})")


@smf.command()
@json_option
@_smf_options
def services(as_json: bool, **conn: Any) -> None:
    """List registered services with their location."""
    with rpc_errors("services"):
        items = _smf(conn).services()
    if as_json:
        return echo_json(items)
    _table([(s.global_id, s.name, s.version, s.location, str(s.epoch),
             ",".join(x.name for x in s.servers)) for s in items],
           ("id", "name", "version", "location", "epoch", "servers"))


@smf.command()
@click.argument("service_id")
@json_option
@_smf_options
def show(service_id: str, as_json: bool, **conn: Any) -> None:
    """Show one service."""
    with rpc_errors("show"):
        s = _smf(conn).service(service_id)
    if as_json:
        return echo_json(s)
    click.echo(f"{s.name} {s.version} ({s.global_id}, local {s.local_id}): {s.description}")
    click.echo(f"port {s.port}/{s.transport}, image {s.image_ref or '-'}")
    click.echo(f"location {s.location} at epoch {s.epoch}; SERV CAP {s.capability_text}")
    _table([(x.name, x.global_id, f"{x.ipv4}:{x.port}", str(x.max_load),
             x.fingerprint.hex()[:16]) for x in s.servers],
           ("server", "global id", "endpoint", "max load", "key"))


@smf.command()
@json_option
@_smf_options
def users(as_json: bool, **conn: Any) -> None:
    """List registered users."""
    with rpc_errors("users"):
        items = _smf(conn).users()
    if as_json:
        return echo_json(items)
    _table([(u.global_id, f"{u.first_name} {u.surname}", u.role, str(u.rank),
             u.capability_text) for u in items], ("id", "name", "role", "rank", "USER CAP"))


@smf.command()
@json_option
@_smf_options
def devices(as_json: bool, **conn: Any) -> None:
    """List registered devices."""
    with rpc_errors("devices"):
        items = _smf(conn).devices()
    if as_json:
        return echo_json(items)
    _table([(d.global_id, d.local_id, d.name, f"{d.owner_first_name} {d.owner_surname}",
             d.capability_text) for d in items], ("id", "local id", "name", "owner", "DEV CAP"))


def _ras(conn: dict[str, Any]) -> RasClient:
    return RasClient(channel(conn["ras_target"], "ras", conn["ca_cert"], conn["cert"],
                             conn["key"]))


def _ras_options(fn: F) -> F:
    fn = click.option("--ras", "ras_target", envvar="EDGEFERRY_RAS", metavar="HOST:PORT",
                      help="RAS agent (env EDGEFERRY_RAS).")(fn)
    return tls_options(fn)


@smf.command("ras-register")
@click.option("--identity", type=click.Path(path_type=Path), required=True,
              help="The host's public identity file (rasp-endpoint.pub).")
@_resource_options
@_ras_options
def ras_register(identity: Path, cpu: int, memory: int, storage: int, network: int,
                 **conn: Any) -> None:
    """Register a host at the RAS as advertising cloud (with MAX) and as server."""
    public = _public(identity)
    with rpc_errors("ras-register"):
        client = _ras(conn)
        free = client.register_cloud(public, _resources(cpu, memory, storage, network))
        client.register_server(public)
    click.echo(f"{public.name} registered: FREE cpu {free.cpu} m, memory {free.memory} MiB, "
               f"storage {free.storage} MiB, network {free.network} Mbit/s")


@smf.command("ras-table")
@json_option
@_ras_options
def ras_table(as_json: bool, **conn: Any) -> None:
    """Show the RAS table (Table 1): clouds, allocations, service locations."""
    mib = 1024 * 1024
    with rpc_errors("ras-table"):
        t = _ras(conn).table()
    if as_json:
        return echo_json(t)
    _table([(c.name, f"{c.maximum.cpu_millicores}/{c.allocated.cpu_millicores}",
             f"{c.maximum.memory_bytes // mib}/{c.allocated.memory_bytes // mib}",
             f"{c.free.cpu_millicores}", f"{c.free.memory_bytes // mib}") for c in t.clouds],
           ("cloud", "cpu max/alloc", "MiB max/alloc", "free cpu", "free MiB"))
    if t.allocations:
        click.echo("")
        _table([(a.server, a.cloud, str(a.allocated.cpu_millicores)) for a in t.allocations],
               ("server", "cloud", "cpu allocated"))
    if t.locations:
        click.echo("")
        _table([(r.service, r.cloud) for r in t.locations], ("service", "runs on"))


__all__ = ["smf"]
