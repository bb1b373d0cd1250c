"""`edgeferry audit ...`: the data-audit service (seed 002) for people.

Offline (no agent):
    edgeferry audit check policies.yaml --container App1 --edge Edge3
    edgeferry audit check --paper --container App1 --region regionB --seed 4

Against an audit agent (mTLS; owners identified by a sealed owner token):
    edgeferry audit token alice --key-file owner-token.key --out alice.token
    edgeferry audit register policies.yaml   --agent 10.10.0.5:50061 --token-file alice.token
    edgeferry audit share redeem KEY          --agent ... --token-file bob.token
    edgeferry audit evaluate App1 --edge Edge3 --agent ... --token-file bob.token
    edgeferry audit verify-log                --agent ...

Connection flags also come from the environment: EDGEFERRY_AUDIT_AGENT, EDGEFERRY_CA_CERT,
EDGEFERRY_CERT, EDGEFERRY_KEY, EDGEFERRY_AUDIT_TOKEN_FILE.

Exit codes: 0 permit / success, 1 deny or a refused operation, 2 bad input, 3 agent unreachable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from agents.audit.destination import MigrationDecision, Target, choose_destination
from agents.audit.domain import AuditError
from agents.audit.tables import PolicyDocument, load_policy_file, seed002_tables
from edgeferry.cli.connection import channel, rpc_errors, tls_options
from edgeferry.errors import EXIT_FAILURE, ConfigError, OperationFailed

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------------------------
# Rendering: the per-element table
# --------------------------------------------------------------------------------------------

Row = tuple[str, str, str, str, str, str]  # element, vs, required, actual, result, note


def _table(rows: Sequence[Row]) -> list[str]:
    header: Row = ("element", "compared with", "required", "edge has", "result", "why")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(5)]
    out = []
    for r in (header, *rows):
        out.append("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 3)
    return out


def _result(constrained: bool, held: bool) -> str:
    if not constrained:
        return "-"
    return "held" if held else "FAILED"


def render_tries(tries: Sequence[tuple[str, bool, Sequence[Row]]], *, chosen: str | None,
                 reasons: Sequence[str], seed: int | None, mode: str,
                 show_unconstrained: bool) -> list[str]:
    lines: list[str] = []
    for n, (edge, permit, rows) in enumerate(tries, start=1):
        lines.append(f"try {n}: {edge} -> {'PERMIT' if permit else 'DENY'}")
        shown = [r for r in rows if show_unconstrained or r[4] != "-"]
        lines.extend("  " + line for line in _table(shown))
        lines.append("")
    verdict = f"PERMIT: migrate to {chosen}" if chosen else "DENY: the migration is not executed"
    if mode != "edge" and seed is not None:
        verdict += f" (mode {mode}, seed {seed})"
    lines.append(verdict)
    if not chosen:
        lines.extend(f"  - {r}" for r in reasons)
    return lines


def _rows_from_decision(md: MigrationDecision) -> list[tuple[str, bool, list[Row]]]:
    return [(d.edge, d.permit, [(c.element, c.edge_element, c.required, c.actual,
                                 _result(c.constrained, c.held), c.note) for c in d.checks])
            for d in md.tries]


# --------------------------------------------------------------------------------------------
# The group and its offline command
# --------------------------------------------------------------------------------------------


@click.group("audit")
def audit() -> None:
    """Data-audit control for container migration (seed 002): policies, decisions, audit log."""


def _target_options(fn: F) -> F:
    fn = click.option("--seed", type=int, default=None,
                      help="Seed of the try order for --region / any edge.")(fn)
    fn = click.option("--region", default=None, help="Try the edges of this region.")(fn)
    fn = click.option("--edge", default=None, help="Audit this edge only.")(fn)
    return fn


def _target(edge: str | None, region: str | None) -> Target:
    if edge and region:
        raise ConfigError("give --edge or --region (or neither for any edge), not both")
    if edge:
        return Target.edge(edge)
    if region:
        return Target.region(region)
    return Target.any()


@audit.command("check")
@click.argument("policy_file", required=False, type=click.Path(path_type=Path))
@click.option("--paper", is_flag=True, help="Use the shipped seed-002 Tables 5-6.")
@click.option("--container", "container", required=True, help="Container to migrate.")
@_target_options
@click.option("--all-rows", is_flag=True, help="Also show unconstrained elements.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def check(policy_file: Path | None, paper: bool, container: str, edge: str | None,
          region: str | None, seed: int | None, all_rows: bool, as_json: bool) -> None:
    """Evaluate a migration locally from a YAML policy file (edges, containers, monitor)."""
    doc = _load_document(policy_file, paper)
    policy = doc.containers.get(container)
    if policy is None:
        raise ConfigError(f"container {container!r} is not in the policy file "
                          f"(declared: {', '.join(sorted(doc.containers)) or 'none'})")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    try:
        md = choose_destination(policy, doc.edges, doc.states, _target(edge, region), seed=seed)
    except AuditError as err:
        raise ConfigError(str(err)) from None
    if as_json:
        click.echo(json.dumps(md.as_dict(), indent=2))
    else:
        for line in render_tries(_rows_from_decision(md), chosen=md.chosen,
                                 reasons=md.reasons(), seed=md.seed,
                                 mode=md.target.mode.value, show_unconstrained=all_rows):
            click.echo(line)
    if not md.permit:
        raise click.exceptions.Exit(EXIT_FAILURE)


def _load_document(policy_file: Path | None, paper: bool) -> PolicyDocument:
    if paper == (policy_file is not None):
        raise ConfigError("give a POLICY_FILE or --paper (exactly one)")
    try:
        return seed002_tables() if paper else load_policy_file(policy_file)  # type: ignore[arg-type]
    except AuditError as err:
        raise ConfigError(str(err)) from None


# --------------------------------------------------------------------------------------------
# Commands that talk to an audit agent
# --------------------------------------------------------------------------------------------


def _agent_options(fn: F) -> F:
    fn = tls_options(fn)
    fn = click.option("--agent", envvar="EDGEFERRY_AUDIT_AGENT", required=True,
                      help="Audit agent address HOST:PORT.")(fn)
    return click.option("--server-name", default=None,
                        help="Name expected in the agent's certificate (default: the host).")(fn)


def _token_option(fn: F) -> F:
    return click.option("--token-file", envvar="EDGEFERRY_AUDIT_TOKEN_FILE", required=True,
                        type=click.Path(path_type=Path),
                        help="The owner's sealed token (from the SMF or `audit token`).")(fn)


def _read_token(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(f"cannot read token file {path}: {err.strerror}") from None
    try:
        return bytes.fromhex(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"token file {path} must hold the token as hex") from None


@contextmanager
def _client(what: str, conn: dict[str, Any]) -> Iterator[Any]:
    """An `AuditClient` over mTLS; RPC failures in the block become one-line errors."""
    from agents.audit.client import AuditClient

    agent = conn["agent"]
    client = AuditClient(channel(agent, "agent", conn["ca_cert"], conn["cert"], conn["key"],
                                 server_name=conn["server_name"]))
    try:
        with rpc_errors(what, f"audit agent at {agent}"):
            yield client
    finally:
        client.close()


@audit.command("register")
@click.argument("policy_file", type=click.Path(path_type=Path))
@_token_option
@_agent_options
def register(policy_file: Path, token_file: Path, **conn: Any) -> None:
    """Register (or update) the edges and container policies of a YAML file with the agent.

    Prints the share key of every newly registered edge (give it to container owners).
    """
    doc = _load_document(policy_file, False)
    token = _read_token(token_file)
    from agents.audit.client import AuditRpcError
    with _client("register", conn) as c:
        for name, edge in doc.edges.items():
            try:
                share = c.register_edge(token, name, edge.canonical(), region=edge.region,
                                        address=edge.address)
                click.echo(f"edge {name}: registered; share key {share}")
            except AuditRpcError as err:
                if err.code.name != "ALREADY_EXISTS":
                    raise
                c.update_edge(token, name, edge.canonical(), region=edge.region,
                              address=edge.address)
                click.echo(f"edge {name}: updated")
        for name, policy in doc.containers.items():
            try:
                c.register_container(token, name, policy.canonical(), location=policy.location)
                click.echo(f"container {name}: registered")
            except AuditRpcError as err:
                if err.code.name != "ALREADY_EXISTS":
                    raise
                c.update_container(token, name, policy.canonical(), location=policy.location)
                click.echo(f"container {name}: updated")


@audit.command("evaluate")
@click.argument("container")
@_target_options
@click.option("--all-rows", is_flag=True, help="Also show unconstrained elements.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@_token_option
@_agent_options
def evaluate_cmd(container: str, edge: str | None, region: str | None, seed: int | None,
                 all_rows: bool, as_json: bool, token_file: Path, **conn: Any) -> None:
    """Ask the agent whether CONTAINER may migrate (to --edge, to --region, or anywhere)."""
    _target(edge, region)  # validates the combination
    token = _read_token(token_file)
    with _client("evaluate", conn) as c:
        v = c.evaluate(token, container, edge=edge, region=region, seed=seed)
    if as_json:
        click.echo(json.dumps({
            "permit": v.permit, "chosen_edge": v.chosen_edge, "seed": v.seed,
            "reasons": list(v.reasons), "request_id": v.request_id, "log_seq": v.log_seq,
            "audit_seconds": v.audit_seconds, "round_trip_seconds": v.round_trip_seconds,
            "tries": [{"edge": t.edge, "permit": t.permit,
                       "checks": [c.__dict__ for c in t.checks]} for t in v.tries]}, indent=2))
    else:
        tries = [(t.edge, t.permit, [(r.element, r.edge_element, r.required, r.actual,
                                      _result(r.constrained, r.held), r.note)
                                     for r in t.checks]) for t in v.tries]
        mode = "edge" if edge else "region" if region else "any"
        for line in render_tries(tries, chosen=v.chosen_edge, reasons=v.reasons, seed=v.seed,
                                 mode=mode, show_unconstrained=all_rows):
            click.echo(line)
        click.echo(f"audit {v.audit_seconds * 1e3:.3f} ms in the agent, "
                   f"{v.round_trip_seconds * 1e3:.3f} ms round trip; logged as entry "
                   f"{v.log_seq} ({v.request_id})")
    if not v.permit:
        raise click.exceptions.Exit(EXIT_FAILURE)


@audit.group("share")
def share() -> None:
    """Share an edge with another owner through its share key."""


@share.command("redeem")
@click.argument("share_key")
@_token_option
@_agent_options
def share_redeem(share_key: str, token_file: Path, **conn: Any) -> None:
    """Use SHARE_KEY (from an edge owner) to add that edge to your edges."""
    token = _read_token(token_file)
    with _client("share redeem", conn) as c:
        click.echo(f"edge {c.redeem_share_key(token, share_key)} is now available to you")


@share.command("rotate")
@click.argument("edge")
@_token_option
@_agent_options
def share_rotate(edge: str, token_file: Path, **conn: Any) -> None:
    """Issue a new share key for an edge you own (the old key stops working)."""
    token = _read_token(token_file)
    with _client("share rotate", conn) as c:
        click.echo(f"edge {edge}: new share key {c.rotate_share_key(token, edge)}")


@audit.command("verify-log")
@_agent_options
def verify_log(**conn: Any) -> None:
    """Ask the agent to verify its tamper-evident audit log."""
    with _client("verify-log", conn) as c:
        ok, entries, problem = c.verify_log()
    if not ok:
        raise OperationFailed(f"audit log verification failed after {entries} entries: {problem}")
    click.echo(f"audit log OK: {entries} entries verified")


@audit.command("token")
@click.argument("owner")
@click.option("--key-file", required=True, type=click.Path(path_type=Path),
              help="The owner-token key shared with the audit agent (0600).")
@click.option("--ttl", type=float, default=3600.0, show_default=True, help="Seconds valid.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Where to write the token (hex, mode 0600).")
@click.option("--new-key", is_flag=True, help="Create --key-file first (refuses to overwrite).")
def token_cmd(owner: str, key_file: Path, ttl: float, out: Path, new_key: bool) -> None:
    """Issue a sealed owner token for OWNER (the issuer's role until the SMF issues them)."""
    from agents.audit.owners import create_key_file, read_key_file, seal_owner_token

    try:
        key = create_key_file(key_file) if new_key else read_key_file(key_file)
        token = seal_owner_token(key, owner, ttl)
    except FileExistsError:
        raise ConfigError(f"{key_file} exists; drop --new-key to use it") from None
    except FileNotFoundError:
        raise ConfigError(f"key file {key_file} does not exist (use --new-key)") from None
    except (PermissionError, ValueError) as err:
        raise ConfigError(str(err)) from None
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.hex().encode() + b"\n")
    finally:
        os.close(fd)
    click.echo(f"token for {owner} written to {out} (valid {ttl:g} s)")
