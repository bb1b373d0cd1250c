"""Typed agent configuration: a YAML file (``/etc/edgeferry/<agent>.yaml`` on hosts) plus overrides.

Example file::

    name: ras
    listen_host: 10.10.0.11
    listen_port: 50051
    tls:
      ca_cert: /etc/edgeferry/pki/ca.crt
      cert: /etc/edgeferry/pki/ras.crt
      key: /etc/edgeferry/pki/ras.key
    data_dir: /var/lib/edgeferry/ras
    log_level: INFO
    settings:            # agent-specific; validate with AgentConfig.settings_as(Model)
      advertisement_ttl_s: 30

Unknown keys are rejected with a message that names the key and the file. Overrides (from
command-line flags) are a mapping of dotted keys (``"tls.cert"``, ``"settings.peers"``) applied on
top of the file before validation.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.common.errors import AgentConfigError

DEFAULT_CONFIG_DIR = Path("/etc/edgeferry")
DEFAULT_DATA_ROOT = Path("/var/lib/edgeferry")
AGENT_NAME_RE = r"^[a-z][a-z0-9_-]{0,62}$"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
SettingsT = TypeVar("SettingsT", bound=BaseModel)


def default_config_path(agent: str) -> Path:
    """Where an agent's configuration lives on a deployed host."""
    return DEFAULT_CONFIG_DIR / f"{agent}.yaml"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TLSConfig(BaseModel):
    """Paths of the PEM files for mutual TLS: the lab CA, this agent's certificate and key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_cert: Path
    cert: Path
    key: Path
    #: Certificate revocation list (PEM or DER, signed by the lab CA): clients whose
    #: certificate serial it lists are refused; the file is re-read when it changes.
    crl: Path | None = None


class LimitsConfig(BaseModel):
    """Abuse bounds of the agent's server (agents/common/admission.py). ``max_workers`` of the
    agent is the number of calls that run at once; these add the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: calls that may wait for a worker; one more is refused RESOURCE_EXHAUSTED at once
    max_queued_rpcs: int = Field(default=16, ge=0, le=4096)
    #: extra threads kept for health checks and refusals while every worker is busy
    reserved_workers: int = Field(default=4, ge=1, le=64)
    #: the server's deadline on a call (a client deadline can only shorten it)
    call_deadline_s: float = Field(default=60.0, gt=0)
    #: the deadline of long calls (image commit/push/pull, a whole migration); keep it above
    #: the SMF's ``transfer_timeout_s``
    long_call_deadline_s: float = Field(default=900.0, gt=0)
    #: largest request of an ordinary RPC, checked on the raw bytes before decoding
    max_request_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: per-method request limits (full method name ``/pkg.Service/Method``), on top of the
    #: built-in ones for block delivery
    method_max_request_bytes: dict[str, int] = Field(default_factory=dict)


class AgentConfig(BaseModel):
    """Everything the shared agent plumbing needs; agent-specific values go in ``settings``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=AGENT_NAME_RE)
    listen_host: str = "127.0.0.1"
    #: 0 lets the OS choose a free port (tests); the bound port is `AgentServer.port`.
    listen_port: int = Field(default=50051, ge=0, le=65535)
    tls: TLSConfig | None = None
    #: Serve without TLS. Only allowed on a loopback address; off by default.
    insecure_plaintext: bool = False
    data_dir: Path | None = None
    log_level: LogLevel = "INFO"
    #: Also append JSON log lines to this file (stderr always gets them).
    log_file: Path | None = None
    #: Seconds in-flight RPCs get to finish on SIGTERM/SIGINT.
    grace_seconds: float = Field(default=5.0, ge=0)
    max_workers: int = Field(default=8, ge=1, le=256)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    settings: dict[str, Any] = Field(default_factory=dict)
    #: Where the values came from (for error messages); not a configuration key.
    source: str = Field(default="<defaults>", exclude=True)

    @model_validator(mode="after")
    def _check_transport(self) -> AgentConfig:
        if self.insecure_plaintext and self.tls is not None:
            raise ValueError("insecure_plaintext: true conflicts with tls: choose one")
        if self.insecure_plaintext and not is_loopback_host(self.listen_host):
            raise ValueError(
                f"insecure_plaintext is only allowed on a loopback address, "
                f"not listen_host {self.listen_host!r}; configure tls instead"
            )
        return self

    @property
    def resolved_data_dir(self) -> Path:
        """``data_dir`` or ``/var/lib/edgeferry/<name>``."""
        return self.data_dir if self.data_dir is not None else DEFAULT_DATA_ROOT / self.name

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """Validate ``settings`` against an agent's own pydantic model (use ``extra="forbid"``)."""
        try:
            return model.model_validate(self.settings)
        except ValidationError as err:
            raise AgentConfigError(_describe(err, self.source, prefix="settings")) from None


def _describe(err: ValidationError, source: str, prefix: str = "") -> str:
    """One line per problem, naming the dotted key and the file."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r} in {source}")
        elif loc:
            parts.append(f"{loc}: {e['msg']} (in {source})")
        else:
            parts.append(f"{e['msg'].removeprefix('Value error, ')} (in {source})")
    return "; ".join(parts)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys):
        raise AgentConfigError(f"bad override key {dotted!r}: use dotted names like tls.cert")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise AgentConfigError(f"override {dotted!r}: {key!r} is not a mapping")
        node = child
    node[keys[-1]] = value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every problem into an AgentConfigError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AgentConfigError(f"config file {path} does not exist") from None
    except OSError as err:
        raise AgentConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise AgentConfigError(f"{path}{where}: invalid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgentConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Build an AgentConfig from ``defaults``, then the YAML file, then dotted ``overrides``.

    Relative paths in the file (tls.*, data_dir, log_file) are taken relative to the file's folder.
    """
    data: dict[str, Any] = {}
    for key, value in (defaults or {}).items():
        _set_dotted(data, key, value)
    source = "<command line>"
    if path is not None:
        source = str(path)
        file_data = _resolve_relative(read_yaml(path), path.parent)
        _merge(data, file_data)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    if "source" in data:
        raise AgentConfigError(f"unknown key 'source' in {source}")
    try:
        return AgentConfig.model_validate({**data, "source": source})
    except ValidationError as err:
        raise AgentConfigError(_describe(err, source)) from None


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _resolve_relative(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(base / value)
        return value

    out = dict(data)
    for key in ("data_dir", "log_file"):
        if key in out:
            out[key] = fix(out[key])
    tls = out.get("tls")
    if isinstance(tls, dict):
        paths = ("ca_cert", "cert", "key", "crl")
        out["tls"] = {k: fix(v) if k in paths else v for k, v in tls.items()}
    return out
