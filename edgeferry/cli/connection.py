"""What every CLI verb that talks to an agent shares: the mTLS options, the channel, and one
mapping of RPC failures to one-line messages and exit codes.

    @click.option("--smf", "smf_target", envvar="EDGEFERRY_SMF", ...)
    @tls_options
    def services(smf_target, ca_cert, cert, key): ...
        with rpc_errors("services"):
            SmfClient(channel(smf_target, "smf", ca_cert, cert, key)).services()

Exit codes (README "Exit codes"): a refusal or failure of the call is 1, input the agent
rejects (INVALID_ARGUMENT) or missing/unusable TLS files is 2, an agent that does not answer
(UNAVAILABLE, DEADLINE_EXCEEDED) is 3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from agents.audit.client import AuditRpcError
from agents.common.status import RemoteProtocolError
from agents.security.errors import ProtocolError
from edgeferry.errors import ConfigError, EnvironmentProblem, OperationFailed

F = TypeVar("F", bound=Callable[..., Any])

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def tls_options(fn: F) -> F:
    """``--ca-cert``, ``--cert`` and ``--key`` (parameters ``ca_cert``, ``cert``, ``key``),
    each also from its environment variable; `channel` refuses a call without all three."""
    fn = click.option("--key", "key", envvar="EDGEFERRY_KEY", type=click.Path(path_type=Path),
                      help="Client private key, PEM, mode 0600 (env EDGEFERRY_KEY).")(fn)
    fn = click.option("--cert", "cert", envvar="EDGEFERRY_CERT",
                      type=click.Path(path_type=Path),
                      help="Client certificate from the lab CA, PEM (env EDGEFERRY_CERT).")(fn)
    fn = click.option("--ca-cert", "ca_cert", envvar="EDGEFERRY_CA_CERT",
                      type=click.Path(path_type=Path),
                      help="Lab CA certificate, PEM (env EDGEFERRY_CA_CERT).")(fn)
    return fn


def channel(target: str | None, what: str, ca_cert: Path | None, cert: Path | None,
            key: Path | None, server_name: str | None = None) -> grpc.Channel:
    """An mTLS channel to ``target``; a missing address (flag ``--<what>``, env
    ``EDGEFERRY_<WHAT>``) or missing/unusable TLS files is a `ConfigError`."""
    from agents.common.client import secure_channel
    from agents.common.errors import AgentError

    if not target:
        raise ConfigError(f"no {what} address: pass --{what} HOST:PORT or set "
                          f"EDGEFERRY_{what.upper()}")
    if not (ca_cert and cert and key):
        raise ConfigError("mTLS needs --ca-cert, --cert and --key (or EDGEFERRY_CA_CERT, "
                          "EDGEFERRY_CERT, EDGEFERRY_KEY)")
    try:
        return secure_channel(target, ca_cert, cert, key, server_name=server_name)
    except AgentError as err:
        raise ConfigError(str(err)) from None


def _status(err: grpc.RpcError | AuditRpcError) -> tuple[grpc.StatusCode | None, str | None]:
    if isinstance(err, AuditRpcError):
        return err.code, err.message
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return code, details


@contextmanager
def rpc_errors(what: str, agent: str = "agent") -> Iterator[None]:
    """Turn refusals and transport failures inside the block into one-line errors with the
    documented exit codes; ``what`` names the command, ``agent`` the peer (e.g. "audit agent
    at HOST:PORT") in the message for an agent that does not answer."""
    try:
        yield
    except RemoteProtocolError as err:
        raise OperationFailed(f"{what} refused: {err.code}: {err.message}") from None
    except ProtocolError as err:
        raise OperationFailed(f"{what} refused locally: {err.code}: {err.message}") from None
    except (grpc.RpcError, AuditRpcError) as err:
        code, details = _status(err)
        if code in _UNREACHABLE:
            raise EnvironmentProblem(f"{what}: cannot reach the {agent} ({details}); check its "
                                     "address and the TLS files") from None
        name = code.name if code is not None else "ERROR"
        message = f"{what} failed: {name}: {details}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise ConfigError(message) from None
        raise OperationFailed(message) from None
