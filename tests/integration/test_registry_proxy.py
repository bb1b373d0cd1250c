"""The registry role's nginx proxy, for real: Debian's nginx with the role's own template in
front of Debian's docker-registry on loopback, asked by real HTTP clients and a real engine.

Per-host accounts (issue 12, item 5): every account pulls anything, pushes only under its own
namespace, deletes nothing; anonymous requests get 401.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from edgeferry.images.registry import REGISTRY_BINARY, free_port, trust_registry, untrust_registry
from tests.conftest import LabPKI

pytestmark = [pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/registry/templates/nginx-registry.conf.j2"
NGINX = "/usr/sbin/nginx"
ACCOUNTS = {"edgeferry": "edgeferry", "edge1": "edge1", "edge2": "edge2"}  # name -> namespace
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


@dataclass
class Proxy:
    port: int
    passwords: dict[str, str]
    ctx: ssl.SSLContext
    ca_cert: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def status(self, method: str, path: str, user: str | None = None,
               password: str | None = None, body: bytes = b"") -> int:
        """One raw request (the path is sent exactly as given); the response status."""
        return self.request(method, path, user, password, body)[0]

    def push_empty_blob(self, user: str, repository: str) -> tuple[int, int]:
        """Start an upload as ``user`` and, when started, complete it with the empty blob:
        (status of the POST, status of the PUT or 0)."""
        started, location = self.request("POST", f"/v2/{repository}/blobs/uploads/", user)
        if started != 202:
            return started, 0
        path = location.split(self.address, 1)[-1]
        sep = "&" if "?" in path else "?"
        return started, self.status("PUT", f"{path}{sep}digest={EMPTY}", user)

    def request(self, method: str, path: str, user: str | None = None,
                password: str | None = None, body: bytes = b"") -> tuple[int, str]:
        """(status, Location header) of one raw request."""
        headers = {"Content-Length": str(len(body))}
        if user is not None:
            secret = self.passwords.get(user, "") if password is None else password
            headers["Authorization"] = "Basic " + b64encode(f"{user}:{secret}".encode()).decode()
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.ctx)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return int(resp.status), resp.getheader("Location") or ""
        finally:
            conn.close()


def _render(**values: Any) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(TEMPLATE.read_text()).render(ansible_managed="test", **values)


def _wait(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited: {log.read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}: {log.read_text()[-500:]}")


@pytest.fixture(scope="module")
def proxy(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    for binary in (NGINX, REGISTRY_BINARY, shutil.which("htpasswd") or "/missing/htpasswd"):
        assert Path(binary).exists(), f"{binary} is missing: run `./edgeferry.sh setup`"
    work = tmp_path_factory.mktemp("regproxy")
    backend, port = free_port(), free_port()
    (work / "data").mkdir()
    (work / "registry.yml").write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{backend}"}}))
    tls = work / "tls"
    lab_pki.ca.issue("registry", tls, dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                     client=False)   # tls/registry.crt, tls/registry.key as the role names them
    passwords = {name: os.urandom(12).hex() for name in ACCOUNTS}
    htpasswd = work / "htpasswd"
    for i, (name, password) in enumerate(passwords.items()):
        subprocess.run(["htpasswd", "-B", "-C", "5", "-i", *(["-c"] if i == 0 else []),
                        str(htpasswd), name], input=password, text=True, check=True,
                       capture_output=True)
    site = _render(
        registry_proxy_accounts=[{"name": n, "namespace": ns} for n, ns in ACCOUNTS.items()],
        registry_proxy_listen=f"127.0.0.1:{port}", registry_proxy_tls_dir=str(tls),
        registry_proxy_htpasswd=str(htpasswd), registry_realm="edgeferry-registry",
        registry_backend_address=f"127.0.0.1:{backend}")
    (work / "site.conf").write_text(site)
    for sub in ("logs", "tmp"):
        (work / sub).mkdir()
    (work / "nginx.conf").write_text(
        f"user root;\nworker_processes 1;\npid {work}/nginx.pid;\n"
        f"error_log {work}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {work}/tmp/body;\n"
        f" proxy_temp_path {work}/tmp/proxy;\n fastcgi_temp_path {work}/tmp/fcgi;\n"
        f" uwsgi_temp_path {work}/tmp/uwsgi;\n scgi_temp_path {work}/tmp/scgi;\n"
        f" include {work}/site.conf;\n}}\n")
    check = subprocess.run([NGINX, "-t", "-p", str(work), "-c", str(work / "nginx.conf")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    reg_log, nginx_log = work / "registry.log", work / "logs/error.log"
    with reg_log.open("wb") as out:
        registry = subprocess.Popen([REGISTRY_BINARY, "serve", str(work / "registry.yml")],
                                    stdout=out, stderr=subprocess.STDOUT)
    nginx = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf"),
                              "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        _wait(backend, registry, reg_log)
        _wait(port, nginx, nginx_log)
        ctx = ssl.create_default_context(cafile=str(lab_pki.ca.cert_path))
        yield Proxy(port, passwords, ctx, lab_pki.ca.cert_path)
    finally:
        for proc in (nginx, registry):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_template_passes_nginx_config_check(proxy: Proxy) -> None:
    # The fixture ran `nginx -t` on the rendered template; the proxy also answers the ping.
    assert proxy.status("GET", "/v2/", "edge1") == 200


def test_anonymous_requests_get_401(proxy: Proxy) -> None:
    assert proxy.status("GET", "/v2/_catalog") == 401
    assert proxy.status("POST", "/v2/edge1/blobs/uploads/") == 401
    assert proxy.status("DELETE", f"/v2/edge1/blobs/{EMPTY}") == 401


def test_wrong_password_gets_401_even_where_the_account_may_push(proxy: Proxy) -> None:
    assert proxy.status("GET", "/v2/_catalog", "edge1", "not-the-password") == 401
    assert proxy.status("POST", "/v2/edge1/blobs/uploads/", "edge1", "not-the-password") == 401
    assert proxy.status("GET", "/v2/_catalog", "nobody", "x") == 401


def test_every_account_pulls_everything(proxy: Proxy) -> None:
    for user in ACCOUNTS:
        assert proxy.status("GET", "/v2/_catalog", user) == 200
        # not denied: the registry itself answers (404: nothing pushed there yet)
        assert proxy.status("GET", "/v2/edgeferry/base/tags/list", user) in (200, 404)
        assert proxy.status("HEAD", "/v2/edge1/x/manifests/latest", user) in (200, 404)


def test_finding_shared_registry_account_edge_pushes_only_to_its_namespace(proxy: Proxy) -> None:
    assert proxy.push_empty_blob("edge2", "edge2/nms-migrated") == (202, 201)
    assert proxy.push_empty_blob("edge2", "edge1/nms-migrated") == (403, 0)
    assert proxy.push_empty_blob("edge2", "edgeferry/nms") == (403, 0)
    # edge1's upload cannot be finished by edge2
    started, location = proxy.request("POST", "/v2/edge1/nms-migrated/blobs/uploads/", "edge1")
    assert started == 202
    path = location.split(proxy.address, 1)[-1]
    assert proxy.status("PUT", f"{path}&digest={EMPTY}", "edge2") == 403
    assert proxy.status("PATCH", path, "edge2") == 403
    assert proxy.status("PUT", "/v2/edge1/nms-migrated/manifests/t", "edge2") == 403
    # a name that merely starts with another account's name is not its namespace
    assert proxy.push_empty_blob("edge1", "edge10/x") == (403, 0)
    assert proxy.push_empty_blob("edgeferry", "edgeferry/nms") == (202, 201)


def test_finding_shared_registry_account_nobody_deletes(proxy: Proxy) -> None:
    for user in ACCOUNTS:
        ns = ACCOUNTS[user]
        assert proxy.status("DELETE", f"/v2/{ns}/x/blobs/{EMPTY}", user) == 403
        assert proxy.status("DELETE", f"/v2/{ns}/x/manifests/{EMPTY}", user) == 403
    # the blob is still there
    assert proxy.status("HEAD", f"/v2/edge2/nms-migrated/blobs/{EMPTY}", "edge1") == 200


@pytest.mark.parametrize("path", [
    "/v2/edge2/../edge1/x/blobs/uploads/",
    "/v2/edge2/%2e%2e/edge1/x/blobs/uploads/",
    "/v2/edge2%2f..%2fedge1/x/blobs/uploads/",
    "/v2/edge2//../edge1/x/blobs/uploads/",
    "/v2/edge2/./x/blobs/uploads/",
])
def test_paths_the_registry_could_read_differently_are_refused(proxy: Proxy, path: str) -> None:
    assert proxy.status("POST", path, "edge2") == 400


@pytest.mark.docker
def test_engine_pushes_to_its_own_namespace_and_not_to_another(proxy: Proxy) -> None:
    import docker

    from edgeferry.images.base import busybox_base

    client = docker.from_env()
    base = client.images.get(busybox_base().tag)
    trust_registry(proxy.address, proxy.ca_cert)
    own, other = f"{proxy.address}/edge2/proxytest", f"{proxy.address}/edge1/proxytest"
    auth = {"username": "edge2", "password": proxy.passwords["edge2"]}
    try:
        for repo in (own, other):
            base.tag(repo, "v1")
        pushed = list(client.api.push(own, "v1", auth_config=auth, stream=True, decode=True))
        assert not [x for x in pushed if "error" in x], pushed
        refused = list(client.api.push(other, "v1", auth_config=auth, stream=True, decode=True))
        errors = [x["error"] for x in refused if "error" in x]
        assert errors and "denied" in errors[-1].lower(), refused
        # edge1 pulls what edge2 pushed
        client.images.remove(f"{own}:v1")
        client.images.pull(own, "v1", auth_config={"username": "edge1",
                                                   "password": proxy.passwords["edge1"]})
        assert client.images.get(f"{own}:v1").id == base.id
    finally:
        for repo in (own, other):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(f"{repo}:v1")
        untrust_registry(proxy.address)
