"""A real local private registry for tests and benchmarks, and a byte-counting relay.

    with LocalRegistry.start(workdir, ca) as reg:     # docker-registry, TLS + htpasswd, 127.0.0.1
        reg.address                                   # "127.0.0.1:41234" (engine trusts it)
        reg.auth_config                               # {"username": ..., "password": ...}
        with CountingRelay(reg.port) as relay:        # TLS passes through untouched
            push to f"127.0.0.1:{relay.port}/..."; relay.upstream_bytes / downstream_bytes

`LocalRegistry` runs Debian's ``docker-registry`` (distribution 2.8) as a plain process with a
certificate from the lab CA (`edgeferry.pki`) and a bcrypt htpasswd file (``htpasswd -B``); the
random password lives only in the work directory (0600). The local engine is made to trust it by
writing ``/etc/docker/certs.d/<host:port>/ca.crt`` (removed on close) -- never by declaring an
insecure registry.

`CountingRelay` is a TCP relay in front of a port on 127.0.0.1 that counts the bytes each way at
the socket level (TLS records included). On one machine the loopback interface's counters mix
every process's traffic; the relay counts only the engine's connections to the registry, so
"bytes actually sent" can be checked against the layers' compressed sizes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from edgeferry.errors import EnvironmentProblem, OperationFailed
from edgeferry.pki import LabCA

CERTS_D = Path("/etc/docker/certs.d")
REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def trust_registry(address: str, ca_cert: Path, certs_d: Path = CERTS_D) -> Path:
    """Make the local engine trust ``address`` (host:port) through ``certs.d``; return the dir."""
    target = certs_d / address
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_cert, target / "ca.crt")
    (target / "ca.crt").chmod(0o644)
    return target


def untrust_registry(address: str, certs_d: Path = CERTS_D) -> None:
    shutil.rmtree(certs_d / address, ignore_errors=True)


@dataclass
class LocalRegistry:
    """A running docker-registry on 127.0.0.1 with TLS and htpasswd auth."""

    workdir: Path
    port: int
    username: str
    password: str
    ca_cert: Path
    process: subprocess.Popen[bytes]
    trusted: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, workdir: Path, ca: LabCA, *, username: str = "edgeferry", port: int = 0
    ) -> LocalRegistry:
        if not Path(REGISTRY_BINARY).exists():
            raise EnvironmentProblem(
                f"{REGISTRY_BINARY} is missing: run `make setup` (apt-get install docker-registry)"
            )
        if shutil.which("htpasswd") is None:
            raise EnvironmentProblem("htpasswd is missing: apt-get install apache2-utils")
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)
        port = port or free_port()
        issued = ca.issue(
            "registry", workdir / "tls", dns_names=("localhost",), ip_addresses=("127.0.0.1",),
            client=False,
        )
        password = secrets.token_urlsafe(24)
        htpasswd = workdir / "htpasswd"
        proc = subprocess.run(
            ["htpasswd", "-B", "-i", "-c", str(htpasswd), username],
            input=password, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise OperationFailed(f"htpasswd failed: {proc.stderr.strip()}")
        htpasswd.chmod(0o600)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": f"127.0.0.1:{port}",
                "tls": {"certificate": str(issued.cert_path), "key": str(issued.key_path)},
            },
            "auth": {"htpasswd": {"realm": "edgeferry", "path": str(htpasswd)}},
        }
        conf = workdir / "config.yml"
        conf.write_text(yaml.safe_dump(config))
        conf.chmod(0o600)
        log = (workdir / "registry.log").open("wb")
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        reg = cls(workdir, port, username, password, ca.cert_path, process)
        try:
            reg._wait_ready()
            reg.trust(reg.address)
        except BaseException:
            reg.close()
            raise
        return reg

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def trust(self, address: str) -> None:
        """Trust ``address`` (this registry, or a relay in front of it) in the local engine."""
        trust_registry(address, self.ca_cert)
        self.trusted.append(address)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def get(self, path: str, accept: str = "application/json") -> tuple[int, bytes]:
        """An authenticated HTTPS GET against the registry API (``/v2/...``)."""
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"https://{self.address}{path}",
            headers={"Authorization": f"Basic {token}", "Accept": accept},
        )
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=10) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.workdir / "registry.log").read_text()[-300:]
                raise OperationFailed(f"docker-registry exited: {tail.strip()}")
            with contextlib.suppress(OSError):
                status, _ = self.get("/v2/")
                if status == 200:
                    return
            time.sleep(0.1)
        raise OperationFailed(f"docker-registry did not answer on {self.address} in {timeout} s")

    def close(self) -> None:
        for address in self.trusted:
            untrust_registry(address)
        self.trusted.clear()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CountingRelay:
    """Relay 127.0.0.1:<port> -> 127.0.0.1:<target_port>, counting bytes in each direction."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._sock = socket.create_server((host, 0))
        self.port = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self.upstream_bytes = 0  # client -> registry (push payload)
        self.downstream_bytes = 0  # registry -> client (pull payload)
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.target[0]}:{self.port}"

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.upstream_bytes, self.downstream_bytes

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, up), name="relay-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(262144)
                if not data:
                    break
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.upstream_bytes += len(data)
                    else:
                        self.downstream_bytes += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns.clear()

    def __enter__(self) -> CountingRelay:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def registry_available() -> bool:
    """True when this machine can run `LocalRegistry` (binary, htpasswd, root for certs.d)."""
    return (
        Path(REGISTRY_BINARY).exists()
        and shutil.which("htpasswd") is not None
        and os.access(CERTS_D.parent if CERTS_D.parent.exists() else Path("/etc"), os.W_OK)
    )
