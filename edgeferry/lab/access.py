"""SSH into the lab: the lab's key pair, its public key in every host, the hosts' keys in a
known_hosts file (read through the engine, never trusted on first use), and a check that SSH
works."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from docker.models.containers import Container

from edgeferry.errors import EnvironmentProblem, OperationFailed
from edgeferry.lab.config import HostSpec, LabSpec
from edgeferry.lab.engine import exec_in
from edgeferry.lab.sshkeys import ensure_keypair
from edgeferry.workspace import lab_state_dir


class LabAccess:
    """The SSH access of one lab, kept in its state directory."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec

    @property
    def state_dir(self) -> Path:
        return lab_state_dir(self.spec.name)

    @property
    def private_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def ensure_keypair(self, changes: list[str]) -> str:
        """The lab's public key (the key pair is generated once)."""
        public_key, created = ensure_keypair(self.private_key, f"edgeferry-lab-{self.spec.name}")
        if created:
            changes.append(f"generated SSH key {self.private_key}")
        return public_key

    def ensure_authorized_key(
        self, container: Container, public_key: str, host: HostSpec, changes: list[str]
    ) -> None:
        """``public_key`` as root's authorized_keys in ``host``."""
        current = exec_in(container, ["cat", "/root/.ssh/authorized_keys"], check=False,
                          expect_output=True)
        if current.strip() == public_key:
            return
        data = (public_key + "\n").encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("authorized_keys")
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, 0, 0
            tar.addfile(info, io.BytesIO(data))
        exec_in(container, ["install", "-d", "-m", "0700", "/root/.ssh"])
        container.put_archive("/root/.ssh", buf.getvalue())
        changes.append(f"installed the lab SSH key on {host.name}")

    def write_known_hosts(self, containers: dict[str, Container], changes: list[str]) -> None:
        """Record every host's ed25519 key by address in the lab's known_hosts."""
        # Host keys are read through the engine (a trusted channel), never trusted on first use.
        lines = []
        for host in self.spec.hosts:
            key = exec_in(containers[host.name], ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
                          expect_output=True)
            keytype, blob = key.split()[:2]
            lines.append(f"{host.address} {keytype} {blob}")
        content = "\n".join(lines) + "\n"
        if self.known_hosts.exists() and self.known_hosts.read_text() == content:
            return
        self.known_hosts.write_text(content)
        changes.append("recorded host keys in known_hosts")

    def check_ssh(self) -> None:
        """SSH as root to every host with the lab key and strict host key checking."""
        if shutil.which("ssh") is None:
            raise EnvironmentProblem("ssh client missing: apt-get install openssh-client")
        for host in self.spec.hosts:
            result = subprocess.run(
                [
                    "ssh",
                    "-i",
                    str(self.private_key),
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    f"UserKnownHostsFile={self.known_hosts}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "ConnectTimeout=10",
                    f"root@{host.address}",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if result.returncode != 0:
                raise OperationFailed(
                    f"SSH to {host.name} ({host.address}) failed: {result.stderr.strip()}"
                )
