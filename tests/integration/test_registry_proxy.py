"""The registry role's nginx proxy, for real: Debian's nginx (workers as www-data) with the role's
own template in front of Debian's docker-registry (as docker-registry) on a Unix socket only
nginx's user reaches, asked by real HTTP clients and a real engine.

Per-host accounts (issue 12, item 5): every account pulls anything, pushes only under its own
namespace, deletes nothing; anonymous requests get 401.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import http.client
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import psutil
import pytest
import yaml

from edgeferry.images.registry import REGISTRY_BINARY, free_port, trust_registry, untrust_registry
from tests.conftest import LabPKI

pytestmark = [pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/registry/templates/nginx-registry.conf.j2"
NGINX = "/usr/sbin/nginx"
PROXY_USER, REGISTRY_USER = "www-data", "docker-registry"
ACCOUNTS = {"edgeferry": "edgeferry", "edge1": "edge1", "edge2": "edge2"}  # name -> namespace
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


@dataclass
class Proxy:
    port: int
    passwords: dict[str, str]
    ctx: ssl.SSLContext
    ca_cert: Path
    socket: Path
    registry_pid: int

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


def _wait_socket(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited: {log.read_text()[-500:]}")
        if path.is_socket():
            return
        time.sleep(0.1)
    raise RuntimeError(f"no socket {path}: {log.read_text()[-500:]}")


def connect_as(user: str, path: Path) -> str:
    """Connect to the Unix socket ``path`` as ``user`` (a separate process with that user's
    uid, gid and groups): "connected" or the error's class name."""
    code = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1]); print('connected')\n"
            "except OSError as err:\n    print(type(err).__name__)\n")
    done = subprocess.run(["python3", "-c", code, str(path)], user=user,
                          group=pwd.getpwnam(user).pw_gid, extra_groups=[],
                          capture_output=True, text=True, check=True, cwd="/")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def proxy(lab_pki: LabPKI) -> Iterator[Proxy]:
    for binary in (NGINX, REGISTRY_BINARY, shutil.which("htpasswd") or "/missing/htpasswd"):
        assert Path(binary).exists(), f"{binary} is missing: run `./edgeferry.sh setup`"
    # As the role deploys it: nginx's workers run as www-data, docker-registry as
    # docker-registry with UMask 0007 on a socket in a 2750 docker-registry:www-data folder.
    # The work folder is outside pytest's 0700 tmp tree so that those users can reach it.
    work = Path(tempfile.mkdtemp(prefix="ef-regproxy-"))
    work.chmod(0o755)
    port = free_port()
    (work / "data").mkdir()
    shutil.chown(work / "data", REGISTRY_USER, REGISTRY_USER)
    run = work / "run"
    run.mkdir()
    shutil.chown(run, REGISTRY_USER, PROXY_USER)
    run.chmod(0o2750)
    sock = run / "registry.sock"
    (work / "registry.yml").write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")},
                    "delete": {"enabled": True}},
        "http": {"net": "unix", "addr": str(sock)}}))
    tls = work / "tls"
    lab_pki.ca.issue("registry", tls, dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                     client=False)   # tls/registry.crt, tls/registry.key as the role names them
    passwords = {name: os.urandom(12).hex() for name in ACCOUNTS}
    htpasswd = work / "htpasswd"
    for i, (name, password) in enumerate(passwords.items()):
        subprocess.run(["htpasswd", "-B", "-C", "5", "-i", *(["-c"] if i == 0 else []),
                        str(htpasswd), name], input=password, text=True, check=True,
                       capture_output=True)
    shutil.chown(htpasswd, "root", PROXY_USER)
    htpasswd.chmod(0o640)
    site = _render(
        registry_proxy_accounts=[{"name": n, "namespace": ns} for n, ns in ACCOUNTS.items()],
        registry_proxy_listen=f"127.0.0.1:{port}", registry_proxy_tls_dir=str(tls),
        registry_proxy_htpasswd=str(htpasswd), registry_realm="edgeferry-registry",
        registry_backend_socket=str(sock))
    (work / "site.conf").write_text(site)
    for sub in ("logs", "tmp"):
        (work / sub).mkdir()
    (work / "nginx.conf").write_text(
        f"user {PROXY_USER};\nworker_processes 1;\npid {work}/nginx.pid;\n"
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
                                    stdout=out, stderr=subprocess.STDOUT, user=REGISTRY_USER,
                                    group=REGISTRY_USER, extra_groups=[], umask=0o007)
    nginx = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf"),
                              "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        _wait_socket(sock, registry, reg_log)
        _wait(port, nginx, nginx_log)
        ctx = ssl.create_default_context(cafile=str(lab_pki.ca.cert_path))
        yield Proxy(port, passwords, ctx, lab_pki.ca.cert_path, sock, registry.pid)
    finally:
        for proc in (nginx, registry):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_registry_listens_on_its_socket_and_no_tcp_port(proxy: Proxy) -> None:
    registry = psutil.Process(proxy.registry_pid)
    assert registry.username() == REGISTRY_USER
    listening = registry.net_connections(kind="all")
    assert [c for c in listening if c.type == socket.SOCK_STREAM and c.family != socket.AF_UNIX
            and c.status == psutil.CONN_LISTEN] == []
    assert [c.laddr for c in listening if c.family == socket.AF_UNIX] == [str(proxy.socket)]


def test_finding_registry_backend_open_to_local_users_only_nginx_connects(proxy: Proxy) -> None:
    """The plain-HTTP registry behind the proxy was open on 127.0.0.1:5001 to every local
    process (push and delete with no account). Its socket now admits nginx's user only."""
    st = proxy.socket.stat()
    # as the registry created it: group www-data (the folder's setgid), rw for the group only
    assert (st.st_mode & 0o777, st.st_gid) == (0o770, grp.getgrnam(PROXY_USER).gr_gid)
    assert connect_as(PROXY_USER, proxy.socket) == "connected"
    for user in ("nobody", "daemon"):
        assert connect_as(user, proxy.socket) == "PermissionError", user
    # and nginx, a www-data worker, gets through to the registry
    assert proxy.status("GET", "/v2/", "edge1") == 200


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
