"""Figure 11's container stream with the real Docker engine at both ends
(agents.ledger.transfer): ``docker save`` -> mutual TLS -> ``docker load``, on loopback."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from agents.ledger.transfer import Receiver, Tls, send

TAG = "edgeferry-test/transfer:1"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_image_streams_from_docker_save_into_docker_load(tmp_path: Path,
                                                           lab_pki: Any) -> None:
    # a one-file image made here (no registry needed), removed before it is loaded back
    (tmp_path / "hello.txt").write_text("figure 11\n")
    with tarfile.open(tmp_path / "rootfs.tar", "w") as tar:
        tar.add(tmp_path / "hello.txt", arcname="hello.txt")
    subprocess.run(["docker", "import", str(tmp_path / "rootfs.tar"), TAG], check=True,
                   capture_output=True, timeout=120)
    saved = subprocess.run(["docker", "save", TAG], check=True, capture_output=True,
                           timeout=120).stdout
    try:
        def tls(cn: str) -> Tls:
            issued = lab_pki.issue(cn)
            return Tls(str(lab_pki.ca.cert_path), str(issued.cert_path), str(issued.key_path))

        rx = Receiver("127.0.0.1", _port(), tls("smf.localhost"), "k" * 32, ("smf.edge1",),
                      10 << 20, accept_timeout_s=60).start()
        out = send("127.0.0.1", rx.port, tls("smf.edge1"), "k" * 32, image=TAG)
        got = rx.wait(60)
        assert out["bytes"] == len(saved) and out["sha256"] == hashlib.sha256(saved).hexdigest()
        assert got["loaded"] == TAG, got
        listed = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", TAG],
                                capture_output=True, text=True, timeout=60, check=True)
        assert listed.stdout.strip().startswith("sha256:")
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True, timeout=60,
                       check=False)
