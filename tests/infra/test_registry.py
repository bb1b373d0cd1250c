"""The private registry: TLS only (nginx in front, docker-registry on a Unix socket only nginx
reaches), no anonymous pull
or push, key protected; per-host accounts: an edge pulls anything, pushes only under its own
namespace and deletes nothing; edges logged in with their own account."""

from __future__ import annotations

import base64
import json

import pytest

from tests.infra.conftest import group_hosts


@pytest.fixture(scope="module")
def is_registry_host(inventory, name) -> bool:
    return name == group_hosts(inventory, "control")[0]


# The lab hosts have python3 but no curl: a tiny HTTP(S) client that prints the status code, or
# 000 when the connection or the TLS handshake fails.
# With a user name, the password is read from a file on the host (never on a command line).
_PROBE = r"""
import base64, http.client, ssl, sys
method, scheme, target, ca = sys.argv[1:5]
user, secret_file = (sys.argv[5:7] + ["", ""])[:2]
hostport, _, path = target.partition("/")
host, _, port = hostport.rpartition(":")
headers = {"Content-Length": "0"}
if user:
    secret = open(secret_file).read().strip()
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    headers["Authorization"] = "Basic " + token
try:
    if scheme == "https":
        ctx = ssl.create_default_context(cafile=ca or None)
        conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, "/" + path, headers=headers)
    print(conn.getresponse().status)
except (OSError, http.client.HTTPException) as err:
    print("000", err, file=sys.stderr)
    print("000")
"""


def probe(host, method: str, url: str, ca: str = "", user: str = "",
          secret_file: str = "") -> str:
    scheme, _, target = url.partition("://")
    cmd = f"python3 -c {_quote(_PROBE)} {method} {scheme} {_quote(target)} {_quote(ca)}"
    if user:
        cmd += f" {_quote(user)} {_quote(secret_file)}"
        with host.sudo():
            return host.check_output(cmd).strip()
    return host.check_output(cmd).strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


CA = "/etc/edgeferry/pki/ca.crt"
REGISTRY_SOCKET = "/run/docker-registry/registry.sock"
_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n    s.connect(sys.argv[1]); print('connected')\n"
    "except OSError as err:\n    print(type(err).__name__)\n"
)


def test_only_nginx_reaches_the_registry_socket(host, is_registry_host):
    """A local process other than nginx cannot talk to docker-registry behind the proxy's back:
    the kernel refuses its socket to every user but www-data (nginx) and the registry's own."""
    if not is_registry_host:
        return
    with host.sudo():
        folder = host.file(REGISTRY_SOCKET.rsplit("/", 1)[0])
        assert (folder.user, folder.group) == ("docker-registry", "www-data")
        assert folder.mode & 0o7777 == 0o2750
        # every agent user of the host (ef-<agent>) and nobody
        agents = [line.split(":", 1)[0] for line in host.check_output("getent passwd")
                  .splitlines() if line.startswith("ef-")]
        others = ["nobody", *agents]
        tried = {user: host.check_output(
            f"runuser -u {user} -- python3 -c {_quote(_CONNECT)} {REGISTRY_SOCKET}")
            for user in ("www-data", *others)}
    assert agents, "no agent user on the registry host"
    assert tried["www-data"] == "connected", tried
    assert {tried[u] for u in others} == {"PermissionError"}, tried


def test_registry_service_and_key(host, is_registry_host, inventory, registry_endpoint):
    if not is_registry_host:
        # the prebaked lab image carries the registry's packages, disabled
        assert not host.service("docker-registry").is_running
        assert not host.service("nginx").is_running
        return
    assert host.service("docker-registry").is_running
    assert host.service("nginx").is_running
    # docker-registry on its Unix socket only; the one TCP listener for the registry is nginx's
    assert host.socket(f"unix://{REGISTRY_SOCKET}").is_listening
    with host.sudo():
        listeners = host.check_output("ss -H -l -t -n -p").splitlines()
    assert not [line for line in listeners if '"docker-registry"' in line], listeners
    published = [line for line in listeners if f" {registry_endpoint} " in line]
    assert published and all('users:(("nginx"' in line for line in published), listeners
    with host.sudo():
        key = host.file("/etc/nginx/edgeferry-registry/registry.key")
        assert key.mode == 0o600 and key.user == "root"
        htpasswd = host.file("/etc/nginx/edgeferry-registry/htpasswd")
        assert htpasswd.mode == 0o640 and htpasswd.group == "www-data"
        names = {line.split(":", 1)[0] for line in htpasswd.content_string.splitlines()}
        assert all(line.split(":", 1)[1].startswith(("$2y$", "$2b$", "$2a$"))
                   for line in htpasswd.content_string.splitlines())
    assert names == {"edgeferry", *group_hosts(inventory, "edge")}


def test_registry_refuses_plain_http(host, registry_endpoint):
    status = probe(host, "GET", f"http://{registry_endpoint}/v2/")
    # A TLS listener answers plain HTTP with 400 (or the connection fails): never 200/401.
    assert status in {"400", "000"}, status


def test_registry_tls_with_lab_ca_and_no_anonymous_pull(host, registry_endpoint):
    # TLS verified against the lab CA (000 would mean the handshake failed), then 401.
    assert probe(host, "GET", f"https://{registry_endpoint}/v2/_catalog", CA) == "401"


def test_registry_refuses_anonymous_push(host, registry_endpoint):
    url = f"https://{registry_endpoint}/v2/edgeferry-infra-test/blobs/uploads/"
    assert probe(host, "POST", url, CA) == "401"


def test_registry_is_not_trusted_without_the_lab_ca(host, registry_endpoint):
    # The system trust store does not know the lab CA: an unpinned client must fail the handshake.
    assert probe(host, "GET", f"https://{registry_endpoint}/v2/") == "000"


def test_edge_docker_is_logged_in(host, inventory, name, registry_endpoint):
    if name not in group_hosts(inventory, "edge"):
        return
    with host.sudo():
        f = host.file("/root/.docker/config.json")
        assert f.mode == 0o600 and f.user == "root"
        auths = json.loads(f.content_string).get("auths", {})
        # the node agent reads its own 0600 password file; no agent user holds a Docker login
        assert not host.file("/var/lib/edgeferry/.docker").exists
    assert registry_endpoint in auths, f"{f.path} has no login for {registry_endpoint}"
    user = base64.b64decode(auths[registry_endpoint]["auth"]).decode().split(":", 1)[0]
    assert user == name, f"{f.path} logs in as {user!r}, not as this host's own account"


SECRET = "/etc/edgeferry/registry-password"
EMPTY_BLOB = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_finding_shared_registry_account_edge_is_confined_to_its_namespace(
        host, inventory, name, registry_endpoint):
    """Each edge has its own account (its host name, its password file readable by the node
    agent only): it pulls anything, pushes only under /v2/<host>/, deletes nothing."""
    edges = group_hosts(inventory, "edge")
    if name not in edges:
        return
    with host.sudo():
        secret = host.file(SECRET)
        assert secret.mode == 0o600 and secret.user != "root"
    other = next((e for e in edges if e != name), "edgeferry")
    base = f"https://{registry_endpoint}/v2"

    def ask(method: str, path: str) -> str:
        return probe(host, method, f"{base}/{path}", CA, name, SECRET)

    assert ask("GET", "_catalog") == "200"
    assert ask("GET", f"{other}/verify/tags/list") in {"200", "404"}  # read, not refused
    assert ask("POST", f"{name}/infra-test/blobs/uploads/") == "202"
    assert ask("POST", f"{other}/infra-test/blobs/uploads/") == "403"
    assert ask("PUT", f"{other}/infra-test/manifests/t") == "403"
    assert ask("DELETE", f"{name}/infra-test/blobs/{EMPTY_BLOB}") == "403"
    assert ask("DELETE", f"{other}/infra-test/manifests/{EMPTY_BLOB}") == "403"
