"""AgentConfig loading: YAML + overrides, unknown keys named with their file, transport rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from agents.common.config import (
    AgentConfig,
    default_config_path,
    is_loopback_host,
    load_config,
)
from agents.common.errors import AgentConfigError


def write(tmp_path: Path, text: str, name: str = "ras.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_file_is_loaded_with_relative_paths_resolved(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: ras
listen_host: 10.10.0.11
listen_port: 50061
tls: {ca_cert: pki/ca.crt, cert: /abs/ras.crt, key: pki/ras.key}
data_dir: data
log_level: DEBUG
settings: {advertisement_ttl_s: 30}
""",
    )
    cfg = load_config(path)
    assert cfg.name == "ras"
    assert (cfg.listen_host, cfg.listen_port) == ("10.10.0.11", 50061)
    assert cfg.tls is not None
    assert cfg.tls.ca_cert == tmp_path / "pki" / "ca.crt"
    assert cfg.tls.cert == Path("/abs/ras.crt")
    assert cfg.resolved_data_dir == tmp_path / "data"
    assert cfg.log_level == "DEBUG"
    assert cfg.settings == {"advertisement_ttl_s": 30}
    assert cfg.source == str(path)


def test_defaults() -> None:
    cfg = load_config(None, {"name": "smf"})
    assert cfg.listen_host == "127.0.0.1" and cfg.listen_port == 50051
    assert cfg.tls is None and cfg.insecure_plaintext is False
    assert cfg.resolved_data_dir == Path("/var/lib/edgeferry/smf")
    assert default_config_path("smf") == Path("/etc/edgeferry/smf.yaml")


def test_unknown_top_level_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ras\nlisten_prot: 1\n")
    with pytest.raises(AgentConfigError) as info:
        load_config(path)
    assert str(info.value) == f"unknown key 'listen_prot' in {path}"


def test_unknown_nested_key_names_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ras\ntls: {ca_cert: a, cert: b, key: c, password: x}\n")
    with pytest.raises(AgentConfigError, match=r"unknown key 'tls\.password' in .*ras\.yaml"):
        load_config(path)


def test_bad_value_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ras\nlisten_port: 70000\n")
    with pytest.raises(AgentConfigError, match=r"listen_port: .* \(in .*ras\.yaml\)"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed\n", r"ras\.yaml line \d+: invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_yaml_is_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_win_over_file_and_merge_nested(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ras\ntls: {ca_cert: /a, cert: /b, key: /c}\nsettings: {x: 1}\n")
    cfg = load_config(path, {"tls.key": "/other.key", "listen_port": 1, "settings.y": [2]})
    assert cfg.tls is not None and cfg.tls.key == Path("/other.key")
    assert cfg.tls.cert == Path("/b")
    assert cfg.listen_port == 1
    assert cfg.settings == {"x": 1, "y": [2]}


def test_override_key_must_be_dotted_name() -> None:
    with pytest.raises(AgentConfigError, match="bad override key"):
        load_config(None, {"name": "ras", "tls..cert": "x"})
    with pytest.raises(AgentConfigError, match="is not a mapping"):
        load_config(None, {"name": "ras", "listen_port": 1, "listen_port.x": 2})


def test_source_is_not_a_config_key(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="unknown key 'source'"):
        load_config(write(tmp_path, "name: ras\nsource: x\n"))


@pytest.mark.parametrize("name", ["RAS", "1ras", "r a s", ""])
def test_agent_name_is_checked(name: str) -> None:
    with pytest.raises(AgentConfigError, match="name"):
        load_config(None, {"name": name})


def test_plaintext_only_on_loopback() -> None:
    assert load_config(None, {"name": "a", "insecure_plaintext": True}).insecure_plaintext
    with pytest.raises(AgentConfigError, match="only allowed on a loopback"):
        load_config(None, {"name": "a", "insecure_plaintext": True, "listen_host": "0.0.0.0"})
    with pytest.raises(AgentConfigError, match="conflicts with tls"):
        load_config(
            None,
            {
                "name": "a",
                "insecure_plaintext": True,
                "tls": {"ca_cert": "/a", "cert": "/b", "key": "/c"},
            },
        )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("edge1", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_s: float = 60.0
    peers: list[str] = []


def test_settings_as_validates_agent_settings(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "name: ras\nsettings: {ttl_s: 5, peers: [a]}\n"))
    assert cfg.settings_as(_Settings) == _Settings(ttl_s=5, peers=["a"])
    bad = load_config(write(tmp_path, "name: ras\nsettings: {ttl: 5}\n", "bad.yaml"))
    with pytest.raises(AgentConfigError) as info:
        bad.settings_as(_Settings)
    assert str(info.value) == f"unknown key 'settings.ttl' in {tmp_path / 'bad.yaml'}"


def test_config_is_immutable() -> None:
    cfg = load_config(None, {"name": "ras"})
    with pytest.raises(ValueError, match="frozen"):
        cfg.listen_port = 1  # type: ignore[misc]
    assert isinstance(cfg, AgentConfig)
