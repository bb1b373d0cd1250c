"""fuxfs end to end: a real FUSE mount (``python -m agents.workloads.nms.fuxfs``) against a real NMS
server process on 127.0.0.1 (TLS with a lab-CA certificate for the NMS name), through a migration
that moves only the server's data directory.

A migration is emulated the way the node agents' stop/commit/push/pull/run carries it: SIGTERM
the server, copy its data directory to a fresh place (the old one is deleted), start a server
there on another port, and point the client at the new address -- once by remounting, once by
rewriting ``--server-file`` under a live mount.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.nms_log_reader import CORRUPT, live_blocks
from tests.nms_tls import NmsTls, issue_nms_cert

REPO = Path(__file__).resolve().parents[2]
BS = 8192
SIZES = {"empty": 0, "one": 1, "b8191": BS - 1, "b8192": BS, "b8193": BS + 1, "mb": 1_000_000}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_key(path: Path, key: bytes) -> Path:
    path.write_text(key.hex())
    path.chmod(0o600)
    return path


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class NmsProcess:
    data: Path
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=15) == 0, self.log.read_text()


@dataclass
class FuxfsMount:
    mountpoint: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def unmount(self) -> None:
        """Unmount (the client flushes, then exits 0)."""
        if os.path.ismount(self.mountpoint):
            subprocess.run([fusermount(), "-u", str(self.mountpoint)], check=True, timeout=30)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()


def fusermount() -> str:
    found = shutil.which("fusermount3") or shutil.which("fusermount")
    assert found, "fusermount3 is missing: apt-get install fuse3 (edgeferry.sh installs it)"
    return found


@dataclass
class Harness:
    tmp: Path
    key_file: Path
    tls: NmsTls
    servers: list[NmsProcess] = field(default_factory=list)
    mounts: list[FuxfsMount] = field(default_factory=list)

    def start_server(self, data: Path) -> NmsProcess:
        log = self.tmp / f"nms-{len(self.servers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agents.workloads.nms.server", "--listen", "127.0.0.1:0",
                 "--data", str(data), "--key-file", str(self.key_file),
                 "--cert-file", str(self.tls.issued.cert_path),
                 "--tls-key-file", str(self.tls.issued.key_path)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        server = NmsProcess(data, proc, log)
        self.servers.append(server)

        def listening() -> bool:
            assert proc.poll() is None, f"NMS server exited: {log.read_text()}"
            m = re.search(r"on 127\.0\.0\.1:(\d+)", log.read_text())
            if m:
                server.port = int(m.group(1))
            return m is not None

        wait_for(listening, 15, "the NMS server to listen")
        return server

    def mount(self, *args: str, key_file: Path | None = None, name: str = "mnt") -> FuxfsMount:
        mnt = self.tmp / name
        mnt.mkdir(exist_ok=True)
        log = self.tmp / f"fuxfs-{len(self.mounts)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agents.workloads.nms.fuxfs", str(mnt), *args,
                 "--key-file", str(key_file or self.key_file), "--retry-deadline", "20",
                 "--ca-file", str(self.tls.ca_cert)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        mount = FuxfsMount(mnt, proc, log)
        self.mounts.append(mount)

        def mounted() -> bool:
            assert proc.poll() is None, f"fuxfs exited {proc.returncode}: {log.read_text()}"
            return os.path.ismount(mnt)

        wait_for(mounted, 20, f"fuxfs to mount {mnt}")
        return mount

    def cleanup(self) -> None:
        """Unmount and stop everything, whatever state a failed test left it in."""
        for m in self.mounts:
            if os.path.ismount(m.mountpoint):
                done = subprocess.run([fusermount(), "-u", str(m.mountpoint)], check=False,
                                      capture_output=True, timeout=30)
                if done.returncode != 0:
                    subprocess.run(["umount", "-l", str(m.mountpoint)], check=False,
                                   capture_output=True, timeout=30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(timeout=10)
            if m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(timeout=10)
        for s in self.servers:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(timeout=10)


@pytest.fixture
def harness(tmp_path: Path, lab_pki) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path, write_key(tmp_path / "nms.key", os.urandom(32)),
                issue_nms_cert(lab_pki.ca, tmp_path / "tls"))
    try:
        yield h
    finally:
        h.cleanup()


def migrate(h: Harness, server: NmsProcess, dest: Path) -> NmsProcess:
    """Stop the server, carry only its data directory elsewhere, start it on a new port."""
    server.stop()
    shutil.copytree(server.data, dest)
    shutil.rmtree(server.data)
    moved = h.start_server(dest)
    assert moved.port != server.port
    return moved


def nms_blocks(data: Path) -> int:
    """Blocks allocated on the server, read from its data folder by an independent reader."""
    blocks = live_blocks(data, BS) if (data / "segments").is_dir() else {}
    assert CORRUPT not in blocks.values()
    return len(blocks)


def read_all(mnt: Path) -> dict[str, str]:
    return {p.name: sha(p.read_bytes()) for p in sorted(mnt.iterdir())}


def test_files_survive_a_migration_and_a_remount(harness: Harness) -> None:
    server = harness.start_server(harness.tmp / "nms-a")
    mount = harness.mount("--server", f"127.0.0.1:{server.port}")
    mnt = mount.mountpoint
    rng = random.Random(0)
    expected = {}
    for name, size in SIZES.items():
        data = rng.randbytes(size)
        (mnt / name).write_bytes(data)
        expected[name] = data

    # unaligned writes and appends through the kernel, then the namespace ops
    log = bytearray()
    with open(mnt / "appends", "ab") as fh:
        for n in (1, 4095, 3, 8192, 10_000, 7):
            chunk = rng.randbytes(n)
            fh.write(chunk)
            fh.flush()
            log += chunk
    with open(mnt / "appends", "r+b") as fh:
        fh.seek(5000)
        fh.write(b"patched across a block boundary" * 200)
        log[5000 : 5000 + 6200] = b"patched across a block boundary" * 200
        os.fsync(fh.fileno())
    expected["appends"] = bytes(log)
    (mnt / "gone").write_bytes(b"x" * 3 * BS)
    os.unlink(mnt / "gone")
    (mnt / "draft").write_bytes(b"draft")
    os.rename(mnt / "draft", mnt / "renamed")
    expected["renamed"] = b"draft"
    os.truncate(mnt / "b8193", 100)
    expected["b8193"] = expected["b8193"][:100]

    want = {name: sha(data) for name, data in sorted(expected.items())}
    assert read_all(mnt) == want
    assert {p.name: p.stat().st_size for p in mnt.iterdir()} == {
        k: len(v) for k, v in expected.items()}
    vfs = os.statvfs(mnt)
    assert vfs.f_bsize == BS and vfs.f_blocks > vfs.f_bfree > 0
    mount.unmount()

    # superblock + one metadata block + whole data blocks: nothing leaked by unlink/truncate
    data_blocks = sum(-(-len(v) // BS) for v in expected.values())
    assert nms_blocks(server.data) == 2 + data_blocks

    moved = migrate(harness, server, harness.tmp / "nms-b")
    remount = harness.mount("--server", f"127.0.0.1:{moved.port}", name="mnt2")
    assert read_all(remount.mountpoint) == want
    (remount.mountpoint / "after").write_bytes(b"written at the new location")
    remount.unmount()
    assert "mounted volume 'fuxfs' (generation" in remount.log.read_text()


def test_a_live_mount_follows_the_nms_through_a_migration(harness: Harness) -> None:
    server = harness.start_server(harness.tmp / "nms-a")
    where = harness.tmp / "nms.endpoint"
    where.write_text(f"127.0.0.1:{server.port}\n")
    # a 2-block cache: reading the 4-block file back must fetch blocks from the new NMS
    mount = harness.mount("--server-file", str(where), "--cache-blocks", "2")
    mnt = mount.mountpoint
    before = os.urandom(3 * BS + 5)
    (mnt / "before").write_bytes(before)

    moved = migrate(harness, server, harness.tmp / "nms-b")
    where.write_text(f"127.0.0.1:{moved.port}\n")  # what the SMF reports after the move

    assert (mnt / "before").read_bytes() == before  # reopened: served from the new NMS
    after = os.urandom(BS + 1)
    (mnt / "after").write_bytes(after)
    assert sorted(p.name for p in mnt.iterdir()) == ["after", "before"]
    mount.unmount()
    assert moved.proc.poll() is None and server.proc.poll() is not None

    again = harness.mount("--server", f"127.0.0.1:{moved.port}", name="mnt2")
    assert (again.mountpoint / "before").read_bytes() == before
    assert (again.mountpoint / "after").read_bytes() == after
    again.unmount()


def test_acknowledged_writes_survive_a_migration_under_a_live_mount(harness: Harness) -> None:
    """The nms-client-moves scenario's client side (its `Fuxfs` and `LogWriter`): lines whose
    fsync returned before, during and after the move are all on the NMS afterwards, read by a
    fresh mount; an fsync issued while the NMS is away blocks and then returns."""
    from edgeferry.experiments.scenarios.nms_client_moves import Fuxfs, LogWriter

    server = harness.start_server(harness.tmp / "nms-a")
    where = harness.tmp / "nms.endpoint"
    where.write_text(f"127.0.0.1:{server.port}\n")
    args = ["--server-file", str(where), "--key-file", str(harness.key_file),
            "--ca-file", str(harness.tls.ca_cert), "--retry-deadline", "60"]
    work = harness.tmp / "client"
    work.mkdir()
    mount = Fuxfs.mount(work, "mnt", args)
    mounts = [mount]
    writer = LogWriter(mount.mountpoint / "trip.log")
    try:
        writer.start()
        assert writer.wait_for_ack_after(3, 30), writer.errors
        server.stop()  # the NMS is gone: the next fsync waits for it
        time.sleep(1.0)
        during = len(writer.acked)
        shutil.copytree(server.data, harness.tmp / "nms-b")
        moved = harness.start_server(harness.tmp / "nms-b")
        where.write_text(f"127.0.0.1:{moved.port}\n")
        assert writer.wait_for_ack_after(during + 3, 60), writer.errors
        assert writer.longest_s >= 0.5  # one fsync waited for the NMS to come back
        writer.stop()
        assert mount.unmount() == 0, mount.log.read_text()
        fresh = Fuxfs.mount(work, "fresh", args)
        mounts.append(fresh)
        lines = [int(x) for x in (fresh.mountpoint / "trip.log").read_text().split()]
        assert fresh.unmount() == 0
    finally:
        writer.stop()
        for m in mounts:  # whatever a failed assertion left mounted
            m.unmount()
    assert writer.errors == [] and writer.acked == list(range(1, len(writer.acked) + 1))
    assert set(writer.acked) <= set(lines), sorted(set(writer.acked) - set(lines))[:10]


def test_a_wrong_key_is_refused_before_mounting(harness: Harness) -> None:
    server = harness.start_server(harness.tmp / "nms-a")
    wrong = write_key(harness.tmp / "wrong.key", os.urandom(32))
    mnt = harness.tmp / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "agents.workloads.nms.fuxfs", str(mnt),
         "--server", f"127.0.0.1:{server.port}", "--key-file", str(wrong),
         "--ca-file", str(harness.tls.ca_cert)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "refused the session key" in done.stderr and "Traceback" not in done.stderr
    assert not os.path.ismount(mnt)
    # the client rejects the server's proof first (mutual authentication), so no request left it
    assert "did not prove knowledge of the session key" in done.stderr
    assert nms_blocks(server.data) == 0  # nothing was formatted for the intruder


def test_a_server_the_lab_ca_did_not_certify_is_refused_before_mounting(harness: Harness,
                                                                         lab_pki) -> None:  # type: ignore[no-untyped-def]
    server = harness.start_server(harness.tmp / "nms-a")
    mnt = harness.tmp / "mnt"
    mnt.mkdir()
    started = time.monotonic()
    done = subprocess.run(  # the client trusts another CA: this NMS is not proven to it
        [sys.executable, "-m", "agents.workloads.nms.fuxfs", str(mnt),
         "--server", f"127.0.0.1:{server.port}", "--key-file", str(harness.key_file),
         "--ca-file", str(lab_pki.foreign_ca.cert_path), "--retry-deadline", "60"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "certificate does not verify" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30  # refused at once, not retried until the deadline
    assert not os.path.ismount(mnt)
    assert nms_blocks(server.data) == 0


def test_sigterm_flushes_buffered_writes_and_exits_cleanly(harness: Harness) -> None:
    server = harness.start_server(harness.tmp / "nms-a")
    mount = harness.mount("--server", f"127.0.0.1:{server.port}")
    data = os.urandom(2 * BS + 300)
    fd = os.open(mount.mountpoint / "open-at-stop", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        assert os.write(fd, data) == len(data)  # buffered in the client, not closed yet
        mount.proc.send_signal(signal.SIGTERM)
        assert mount.proc.wait(timeout=30) == 0, mount.log.read_text()
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    assert not os.path.ismount(mount.mountpoint)
    assert "unmounted; generation" in mount.log.read_text()
    again = harness.mount("--server", f"127.0.0.1:{server.port}", name="mnt2")
    assert (again.mountpoint / "open-at-stop").read_bytes() == data
    again.unmount()
