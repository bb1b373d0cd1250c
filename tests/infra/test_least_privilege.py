"""Least privilege on the hosts: every agent instance runs as its own system user, which alone
reads its key, its secrets and its data folder; certificates are short-lived and the CRL the
agents honour is installed. Expectations come from the deployment manifest (the role's
placement), the "can read" answers from the kernel (`runuser -u USER -- test -r FILE`)."""

from __future__ import annotations

import shlex

import pytest
import yaml

PREFIX = "ef-"


@pytest.fixture(scope="module")
def agents(manifest) -> list[dict]:
    return manifest["agents"]


def _owned_files(manifest: dict) -> list[tuple[str, str]]:
    users = {a["name"]: a["user"] for a in manifest["agents"]}
    files = [(a["key"], a["user"]) for a in manifest["agents"]]
    files += [(a["data_dir"], a["user"]) for a in manifest["agents"]]
    return files + [(p, users[a]) for p, a in manifest["secrets"].items() if a in users]


def _readable(host, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (user, path) pairs whose user can read the path, asked of the kernel in one remote
    shell (`runuser -u USER -- test -r PATH` per pair; one SSH round trip, not one per pair)."""
    script = "\n".join(f"runuser -u {shlex.quote(user)} -- test -r {shlex.quote(path)} "
                       f"&& echo {i}" for i, (user, path) in enumerate(pairs))
    with host.sudo():
        out = host.run(f"sh -c {shlex.quote(script + chr(10) + 'true')}")
    assert out.rc == 0, out.stderr
    return {pairs[int(line)] for line in out.stdout.split()}


def test_each_agent_runs_as_its_own_user(host, agents):
    users = [a["user"] for a in agents]
    assert users == [PREFIX + a["name"] for a in agents]
    assert len(set(users)) == len(users)
    for agent in agents:
        pid = host.check_output(f"systemctl show {agent['unit']} -p MainPID --value")
        assert pid != "0", f"{agent['unit']} is not running"
        assert host.check_output(f"ps -o user:32= -p {pid}") == agent["user"], agent["unit"]


def test_agent_users_are_system_users_without_login_or_home(host, agents):
    users = [a["user"] for a in agents]
    # per user (one SSH round trip): its passwd entry, primary and all groups, home existing
    script = ('for u in "$@"; do getent passwd "$u" || echo "$u:missing"; '
              'echo "$(id -gn "$u") $(id -Gn "$u")"; '
              'test -e "$(getent passwd "$u" | cut -d: -f6)" && echo home || echo nohome; done')
    out = host.check_output(f"sh -c {shlex.quote(script)} sh " + " ".join(users)).splitlines()
    assert len(out) == 3 * len(users), out
    for i, user in enumerate(users):
        entry, groups, home = out[3 * i].split(":"), out[3 * i + 1].split(), out[3 * i + 2]
        assert entry[0] == user and entry[1] != "missing", f"{user} does not exist"
        assert int(entry[2]) < 1000, f"{user} is not a system user"
        assert entry[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"), entry[6]
        assert home == "nohome", f"{user} has a home {entry[5]}"
        assert groups[0] == user and "edgeferry" in groups[1:], groups


def test_finding_one_user_reads_every_key(host, manifest, agents):
    """Before: one user ran every agent and read every key on the host. Now each agent user
    reads its own key, secrets and data folder and none of another agent's."""
    files = _owned_files(manifest)
    assert len(files) >= 2 * len(agents)
    pairs = [(agent["user"], path) for agent in agents for path, _ in files]
    readable = _readable(host, pairs)
    owners = dict(files)
    wrong = [f"{user} {'can' if (user, path) in readable else 'cannot'} read {path}"
             for user, path in pairs if ((user, path) in readable) != (owners[path] == user)]
    assert wrong == []


def test_host_key_is_read_by_no_agent(host, agents):
    pairs = [(agent["user"], "/etc/edgeferry/pki/host.key") for agent in agents]
    assert _readable(host, pairs) == set()


def test_keys_and_secrets_are_0600_and_owned_by_their_agent(host, manifest):
    files = _owned_files(manifest)
    with host.sudo():  # one stat for every file (one SSH round trip)
        paths = " ".join(shlex.quote(path) for path, _ in files)
        out = host.check_output(f"stat -c '%U %a %F' -- {paths}")
    lines = out.splitlines()
    assert len(lines) == len(files), out
    for (path, user), line in zip(files, lines, strict=True):
        owner, mode, kind = line.split(" ", 2)
        assert owner == user, f"{path} is owned by {owner}, not {user}"
        assert mode == ("700" if kind == "directory" else "600"), f"{path}: {mode}"


def test_units_are_hardened(host, agents):
    for agent in agents:
        out = host.check_output(
            f"systemctl show {agent['unit']} -p User -p NoNewPrivileges -p ProtectSystem"
            " -p PrivateTmp -p ProtectProc -p ProtectHome")
        values = dict(line.split("=", 1) for line in out.splitlines())
        assert values == {"User": agent["user"], "NoNewPrivileges": "yes",
                          "ProtectSystem": "strict", "PrivateTmp": "yes",
                          "ProtectProc": "invisible", "ProtectHome": "yes"}, values


_LIFETIMES = r"""
import sys
from cryptography import x509
for p in sys.argv[1:]:
    c = x509.load_pem_x509_certificate(open(p, 'rb').read())
    print(p, (c.not_valid_after_utc - c.not_valid_before_utc).total_seconds())
"""


def test_certificates_last_at_most_the_configured_days(host, manifest, agents):
    days = int(manifest["cert_valid_days"])
    assert days <= 90
    certs = [a["cert"] for a in agents] + ["/etc/edgeferry/pki/host.crt"]
    out = host.check_output(f"{manifest['venv']}/bin/python -c \"{_LIFETIMES}\" {' '.join(certs)}")
    lifetimes = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}
    assert set(lifetimes) == set(certs)
    for path, seconds in lifetimes.items():
        assert seconds <= days * 86400 + 120, f"{path} lasts {seconds / 86400:.1f} days"


_CRL = r"""
import sys
from cryptography import x509
ca = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
crl = x509.load_pem_x509_crl(open(sys.argv[2], 'rb').read())
print(crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key()))
"""


def test_the_crl_is_installed_signed_and_named_in_every_agent_config(host, manifest, agents):
    crl = host.file(manifest["crl"])
    assert crl.exists and crl.user == "root" and crl.mode == 0o644
    out = host.check_output(f"{manifest['venv']}/bin/python -c \"{_CRL}\" "
                            f"{manifest['ca']} {manifest['crl']}")
    assert out == "True"
    with host.sudo():
        for agent in agents:
            config = yaml.safe_load(host.file(agent["config"]).content_string)
            assert config["tls"]["crl"] == manifest["crl"], agent["name"]
