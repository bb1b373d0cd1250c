"""The CLI's one mapping of RPC failures to messages and exit codes, and its mTLS options."""

from __future__ import annotations

import grpc
import pytest
from click.testing import CliRunner

from agents.audit.client import AuditRpcError
from agents.common.status import RemoteProtocolError
from agents.security.errors import ErrorCode, ProtocolError
from edgeferry.cli.audit import audit
from edgeferry.cli.connection import channel, rpc_errors
from edgeferry.cli.smf import smf
from edgeferry.errors import ConfigError, EdgeferryError, EnvironmentProblem, OperationFailed


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def raised(exc: BaseException, agent: str = "agent") -> EdgeferryError:
    with pytest.raises(EdgeferryError) as info, rpc_errors("verb", agent):
        raise exc
    return info.value


@pytest.mark.parametrize("make", [
    lambda code: FakeRpcError(code, "the details"),
    lambda code: AuditRpcError(code, "the details", "Evaluate"),
])
def test_grpc_and_audit_errors_map_to_the_same_codes(make) -> None:
    down = raised(make(grpc.StatusCode.UNAVAILABLE), "audit agent at h:1")
    assert isinstance(down, EnvironmentProblem) and down.exit_code == 3
    assert str(down) == ("verb: cannot reach the audit agent at h:1 (the details); check its "
                         "address and the TLS files")
    assert raised(make(grpc.StatusCode.DEADLINE_EXCEEDED)).exit_code == 3
    bad = raised(make(grpc.StatusCode.INVALID_ARGUMENT))
    assert isinstance(bad, ConfigError) and bad.exit_code == 2
    denied = raised(make(grpc.StatusCode.PERMISSION_DENIED))
    assert isinstance(denied, OperationFailed) and denied.exit_code == 1
    assert str(denied) == "verb failed: PERMISSION_DENIED: the details"


def test_protocol_refusals_are_failures() -> None:
    remote = RemoteProtocolError(ErrorCode.UNKNOWN_PRINCIPAL, "who?", rpc="Migrate",
                                 status=grpc.StatusCode.PERMISSION_DENIED)
    err = raised(remote)
    assert err.exit_code == 1 and str(err).startswith("verb refused: ")
    local = raised(ProtocolError(ErrorCode.MALFORMED, "short"))
    assert local.exit_code == 1 and str(local).startswith("verb refused locally: ")


def test_a_channel_needs_an_address_and_all_three_tls_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="pass --smf HOST:PORT or set EDGEFERRY_SMF"):
        channel(None, "smf", tmp_path, tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="mTLS needs --ca-cert, --cert and --key"):
        channel("h:1", "smf", tmp_path, None, tmp_path)


@pytest.mark.parametrize("argv", [
    (smf, ["services", "--smf", "127.0.0.1:1"]),
    (audit, ["verify-log", "--agent", "127.0.0.1:1"]),
])
def test_both_groups_refuse_a_call_without_tls_files_as_bad_input(argv, monkeypatch) -> None:
    for env in ("EDGEFERRY_CA_CERT", "EDGEFERRY_CERT", "EDGEFERRY_KEY"):
        monkeypatch.delenv(env, raising=False)
    group, args = argv
    result = CliRunner().invoke(group, args)
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == 2
    assert "mTLS needs --ca-cert, --cert and --key" in str(result.exception)
