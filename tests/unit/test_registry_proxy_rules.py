"""The registry proxy's per-account rules as the role's template renders them, evaluated the way
nginx evaluates a regex `map` (entries in order, first match wins, else the default) against an
independent statement of the policy. tests/integration/test_registry_proxy.py runs the same
template in a real nginx."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import jinja2

TEMPLATE = Path(__file__).resolve().parents[2] / "roles/registry/templates/nginx-registry.conf.j2"
ACCOUNTS = [{"name": n, "namespace": n} for n in ("edgeferry", "edge1", "edge2", "x.y")]


def render() -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="test", registry_proxy_accounts=ACCOUNTS, registry_proxy_listen="a:1",
        registry_proxy_tls_dir="/t", registry_proxy_htpasswd="/h", registry_realm="r",
        registry_backend_socket="/run/docker-registry/registry.sock")


def map_block(text: str, variable: str) -> tuple[str, list[tuple[str, str]]]:
    body = re.search(r"map [^{]*\$" + re.escape(variable) + r" \{(.*?)\n\}", text, re.S)
    assert body, variable
    default, entries = "", []
    for line in filter(str.strip, body.group(1).splitlines()):
        key, value = line.strip().rstrip(";").rsplit(" ", 1)
        if key == "default":
            default = value
        else:
            assert key.startswith('"~') and key.endswith('"'), key
            entries.append((key[2:-1], value))
    return default, entries


def evaluate(variable: str, subject: str) -> str:
    default, entries = map_block(render(), variable)
    return next((v for pattern, v in entries if re.search(pattern, subject)), default)


def allowed(method: str, user: str, path: str) -> bool:
    """The policy, stated independently: reads for all; writes only in one's own namespace;
    no user name -> left to authentication (which answers 401)."""
    if user == "":
        return True
    if method in ("GET", "HEAD"):
        return True
    own = next((a["namespace"] for a in ACCOUNTS if a["name"] == user), None)
    return method in ("PUT", "POST", "PATCH") and own is not None \
        and path.startswith(f"/v2/{own}/")


def test_rules_match_the_policy_for_every_method_account_and_namespace() -> None:
    users = ["", "edgeferry", "edge1", "edge2", "x.y", "xzy", "edge", "edge10", "nobody"]
    paths = ["/v2/", "/v2/_catalog", "/v2/edge1/nms-migrated/blobs/uploads/",
             "/v2/edge10/x/manifests/t", "/v2/edge2/a/b/manifests/t", "/v2/edgeferry/nms/blobs/x",
             "/v2/x.y/a/blobs/uploads/", "/v2/xzy/a/blobs/uploads/", "/v2/edge1"]
    methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]
    checked = 0
    for method, user, path in itertools.product(methods, users, paths):
        got = evaluate("edgeferry_registry_allowed", f"{method} {user} {path}") == "1"
        assert got == allowed(method, user, path), (method, user, path)
        checked += 1
    assert checked == len(methods) * len(users) * len(paths)


def test_nobody_may_delete() -> None:
    for account in ACCOUNTS:
        path = f"/v2/{account['namespace']}/x/manifests/sha256:{'0' * 64}"
        assert evaluate("edgeferry_registry_allowed", f"DELETE {account['name']} {path}") == "0"


def test_non_canonical_paths_are_flagged() -> None:
    bad = ["/v2/edge2/../edge1/x", "/v2/edge2/%2e%2e/edge1/", "/v2//edge1/", "/v2/edge2/./x"]
    good = ["/v2/edge2/x/blobs/uploads/uuid?_state=a%3D%3D&digest=sha256%3Aab",
            "/v2/edge2/x.y/manifests/v1.0"]
    for path in bad:
        assert evaluate("edgeferry_registry_bad_path", path) == "1", path
    for path in good:
        assert evaluate("edgeferry_registry_bad_path", path) == "0", path


def test_registry_serves_only_on_the_unix_socket_the_proxy_uses() -> None:
    """docker-registry gets no TCP address (a local process would bypass the proxy): config.yml
    names the Unix socket, and nginx passes requests to that same socket."""
    import yaml

    sock = "/run/docker-registry/registry.sock"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    config = yaml.safe_load(env.from_string(
        (TEMPLATE.parent / "config.yml.j2").read_text()).render(
        ansible_managed="test", registry_log_level="info", registry_storage_path="/s",
        registry_storage_delete_enabled=False, registry_backend_socket=sock))
    assert config["http"]["net"] == "unix" and config["http"]["addr"] == sock
    passes = re.findall(r"^\s*proxy_pass\s+(\S+);", render(), re.M)
    assert passes == [f"http://unix:{sock}:"]
