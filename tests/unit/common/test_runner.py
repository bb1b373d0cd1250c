"""Command-line flags -> config overrides, and the runner's one-line error reporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.common import runner
from agents.common.errors import EXIT_ENVIRONMENT, EXIT_USAGE, AgentConfigError


def test_flags_override_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "ras.yaml"
    cfg_file.write_text("listen_port: 50051\nsettings: {ttl: 1}\n")
    cfg = runner.config_from_argv(
        "ras",
        [
            "--config",
            str(cfg_file),
            "--listen",
            "[::1]:6000",
            "--ca-cert",
            "/pki/ca.crt",
            "--cert",
            "/pki/ras.crt",
            "--key",
            "/pki/ras.key",
            "--log-level",
            "debug",
            "--set",
            "settings.peers=[edge1, edge2]",
            "--set",
            "settings.ttl=2.5",
        ],
    )
    assert cfg.name == "ras"
    assert (cfg.listen_host, cfg.listen_port) == ("::1", 6000)
    assert cfg.tls is not None and cfg.tls.key == Path("/pki/ras.key")
    assert cfg.log_level == "DEBUG"
    assert cfg.settings == {"ttl": 2.5, "peers": ["edge1", "edge2"]}


def test_without_config_file_uses_flags_and_defaults(tmp_path: Path) -> None:
    cfg = runner.config_from_argv(
        "smf", ["--port", "7000", "--insecure-plaintext", "--data-dir", str(tmp_path)]
    )
    assert cfg.listen_port == 7000 and cfg.insecure_plaintext
    assert cfg.resolved_data_dir == tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nohost"], "expected HOST:PORT"),
        (["--set", "novalue"], "expected KEY=VALUE"),
        (["--set", "settings.x=[unclosed"], "not valid YAML"),
        (["--set", "bogus=1"], "unknown key 'bogus'"),
    ],
)
def test_bad_flags(argv: list[str], message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        runner.config_from_argv("ras", argv)


@pytest.mark.usefixtures("restore_logging")
def test_run_agent_reports_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.run_agent("ras", argv=["--set", "bogus=1"]) == EXIT_USAGE
    assert capsys.readouterr().err == "ras: error: unknown key 'bogus' in <command line>\n"

    code = runner.run_agent(
        "ras",
        argv=[
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--ca-cert",
            str(tmp_path / "missing-ca.crt"),
            "--cert",
            str(tmp_path / "x.crt"),
            "--key",
            str(tmp_path / "x.key"),
        ],
    )
    assert code == EXIT_ENVIRONMENT
    assert "does not exist" in capsys.readouterr().err
