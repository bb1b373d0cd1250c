"""The private registry: TLS only, no anonymous pull or push, key protected; edges logged in."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import group_hosts


@pytest.fixture(scope="module")
def is_registry_host(inventory, name) -> bool:
    return name == group_hosts(inventory, "control")[0]


# The lab hosts have python3 but no curl: a tiny HTTP(S) client that prints the status code, or
# 000 when the connection or the TLS handshake fails.
_PROBE = r"""
import http.client, ssl, sys
method, scheme, target, ca = sys.argv[1:5]
hostport, _, path = target.partition("/")
host, _, port = hostport.rpartition(":")
try:
    if scheme == "https":
        ctx = ssl.create_default_context(cafile=ca or None)
        conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, "/" + path)
    print(conn.getresponse().status)
except (OSError, http.client.HTTPException) as err:
    print("000", err, file=sys.stderr)
    print("000")
"""


def probe(host, method: str, url: str, ca: str = "") -> str:
    scheme, _, target = url.partition("://")
    cmd = f"python3 -c {_quote(_PROBE)} {method} {scheme} {_quote(target)} {_quote(ca)}"
    return host.check_output(cmd).strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


CA = "/etc/edgeferry/pki/ca.crt"


def test_registry_service_and_key(host, is_registry_host):
    if not is_registry_host:
        assert not host.service("docker-registry").is_running
        return
    assert host.service("docker-registry").is_running
    key = host.file("/etc/docker/registry/tls/registry.key")
    assert key.mode == 0o600 and key.user == "docker-registry"
    htpasswd = host.file("/etc/docker/registry/htpasswd")
    assert htpasswd.mode == 0o640 and htpasswd.contains(r"^edgeferry:\$2[aby]\$")


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
