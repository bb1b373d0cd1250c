"""`edgeferry ui`: the URL it prints for a UI configuration (without serving)."""

from __future__ import annotations

from click.testing import CliRunner

from edgeferry.cli.main import cli
from edgeferry.cli.ui import url_of


def test_url_only_prints_the_configured_https_url(tmp_path):
    config = tmp_path / "ui.yaml"
    config.write_text("name: ui\nlisten_host: 10.10.0.5\nlisten_port: 8443\n"
                      "settings: {audit_address: '10.10.0.5:50061', owner_token_key: k}\n")
    result = CliRunner().invoke(cli, ["ui", "--config", str(config), "--url-only"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("UI server: https://10.10.0.5:8443/ ")
    moved = CliRunner().invoke(cli, ["ui", "--config", str(config), "--url-only",
                                     "--listen", "127.0.0.1:9443"])
    assert "https://127.0.0.1:9443/" in moved.output


def test_url_of_wildcard_and_ipv6():
    assert url_of("0.0.0.0", 8443) == "https://localhost:8443/"
    assert url_of("::1", 8443) == "https://[::1]:8443/"
