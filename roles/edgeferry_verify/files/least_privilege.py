#!/usr/bin/env python3
"""Least-privilege checks of one host, run as root by the edgeferry_verify role with the agents'
virtualenv Python (it has `cryptography`). Reads the deployment manifest
(/etc/edgeferry/agents.json) and prints one JSON object: {"problems": [...], "checked": {...}}.

- each agent's unit runs as the agent's own user, and its main process does;
- each agent key and each secret file is owned by its agent's user with mode 0600;
- each agent user can read its own key and secrets and no other agent's (``runuser -u USER --
  test -r FILE``, the kernel's answer, not a mode calculation);
- every certificate of the host lasts at most the configured number of days;
- the CRL is present, parses and is signed by the lab CA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

SLACK_S = 120  # clock tolerance on a certificate's lifetime


def owned_files(manifest: dict) -> list[tuple[str, str]]:
    """(path, agent user that alone may read it): every agent key and every secret file."""
    users = {a["name"]: a["user"] for a in manifest["agents"]}
    files = [(a["key"], a["user"]) for a in manifest["agents"]]
    files += [(path, users[agent]) for path, agent in sorted(manifest.get("secrets", {}).items())
              if agent in users]
    return files


def read_matrix(manifest: dict) -> list[tuple[str, str, bool]]:
    """(user, path, expected readable) for every agent user and every owned file."""
    users = sorted({a["user"] for a in manifest["agents"]})
    return [(user, path, owner == user) for path, owner in owned_files(manifest) for user in users]


def read_problems(manifest: dict, can_read: Callable[[str, str], bool]) -> list[str]:
    """Where an agent user can read another agent's file, or cannot read its own."""
    problems = []
    for user, path, expected in read_matrix(manifest):
        actual = can_read(user, path)
        if actual and not expected:
            problems.append(f"{user} can read {path}, which is not its own")
        elif expected and not actual:
            problems.append(f"{user} cannot read its own {path}")
    return problems


def ownership_problems(manifest: dict, stat: Callable[[str], tuple[str, int] | None]) -> list[str]:
    """Owned files that are missing, owned by another user, or not mode 0600."""
    problems = []
    for path, user in owned_files(manifest):
        found = stat(path)
        if found is None:
            problems.append(f"{path} is missing")
            continue
        owner, mode = found
        if owner != user:
            problems.append(f"{path} is owned by {owner}, not {user}")
        if mode != 0o600:
            problems.append(f"{path} has mode {mode:04o}, not 0600")
    return problems


def unit_problems(manifest: dict, unit_users: Callable[[str], tuple[str, str]]) -> list[str]:
    """Agents whose unit is configured for, or whose process runs as, another user."""
    problems = []
    for agent in manifest["agents"]:
        configured, running = unit_users(agent["unit"])
        if configured != agent["user"]:
            problems.append(f"{agent['unit']} is configured for user {configured!r}, "
                            f"not {agent['user']!r}")
        if running != agent["user"]:
            problems.append(f"{agent['unit']} runs as {running!r}, not {agent['user']!r}")
    return problems


def lifetime_problems(certs: Iterable[tuple[str, float]], max_days: int) -> list[str]:
    """Certificates (path, lifetime in seconds) that last longer than ``max_days``."""
    return [f"{path} is valid for {seconds / 86400:.1f} days, more than {max_days}"
            for path, seconds in certs if seconds > max_days * 86400 + SLACK_S]


# -- the host side ------------------------------------------------------------------------------
def _can_read(user: str, path: str) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", "-r", path],
                          check=False).returncode == 0


def _stat(path: str) -> tuple[str, int] | None:
    import pwd

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o777


def _unit_users(unit: str) -> tuple[str, str]:
    out = subprocess.run(["systemctl", "show", unit, "-p", "User", "-p", "MainPID"],
                         check=True, capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    pid = props.get("MainPID", "0")
    running = "" if pid == "0" else subprocess.run(
        ["ps", "-o", "user:32=", "-p", pid], check=False, capture_output=True, text=True
    ).stdout.strip()
    return props.get("User", ""), running


def _certificates(manifest: dict) -> tuple[list[tuple[str, float]], list[str]]:
    from cryptography import x509

    ca_path = Path(manifest["ca"])
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    paths = [a["cert"] for a in manifest["agents"]] + [str(ca_path.parent / "host.crt")]
    lifetimes = []
    for path in paths:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        lifetimes.append((path, span.total_seconds()))
    problems = []
    crl_path = Path(manifest["crl"])
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    except (OSError, ValueError) as err:
        problems.append(f"CRL {crl_path}: {err}")
    else:
        signed = crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        if crl.issuer != ca.subject or not signed:
            problems.append(f"CRL {crl_path} is not signed by the lab CA")
    return lifetimes, problems


def main(argv: list[str]) -> int:
    manifest = json.loads(Path(argv[1] if len(argv) > 1 else
                               "/etc/edgeferry/agents.json").read_text())
    lifetimes, problems = _certificates(manifest)
    problems += unit_problems(manifest, _unit_users)
    problems += ownership_problems(manifest, _stat)
    problems += read_problems(manifest, _can_read)
    problems += lifetime_problems(lifetimes, int(manifest["cert_valid_days"]))
    print(json.dumps({"problems": problems, "checked": {
        "agents": len(manifest["agents"]), "reads": len(read_matrix(manifest)),
        "certificates": len(lifetimes)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
