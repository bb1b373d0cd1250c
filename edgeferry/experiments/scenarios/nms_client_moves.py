"""Client-driven NMS migration on the lab: a fuxfs client moves, its NMS follows (seed 000
section 7.7 with BloSM Algorithm 3's distance rule, seed 001).

Seed 000's prototype has the FUSE client tell the SMF to migrate the NMS when the user moves
to another network ("the FUSE client was used to tell the SMF to migrate the service", its
SMF_THREAD); BloSM migrates the service container when the client travels past the distance up
to which its edge serves it. Here the client is the real fuxfs command (a FUSE mount on the
controller, `agents.workloads.nms.fuxfs`, its NMS address in a ``--server-file``) plus its SMF
thread in this process, which follows the client's position along the workload's path
(`edgeferry.experiments.mobility`) and, at the first position past its edge's threshold that
another edge covers, asks the SMF to migrate the NMS there (MigrateService with the user's and
device's capabilities), then finds the NMS again through the SMF (SSP session + locate) and
rewrites the server file. The mount is never remounted: every FUSE call that meets the
migration blocks until the NMS answers at its new address.

Per trial (untimed set-up as in `nms_secure_migration`: the NMS fresh at the source, the
destination without NMS images, the control stop/start, both links measured):

* ``ssp``: an SSP session through the SMF locates the NMS; its address goes to the server file;
* ``mount``: fuxfs mounts the volume (a fresh process each trial);
* ``write-files``: ``files`` files of ``volume_mb`` MB of random bytes in all, each fsync'ed,
  SHA-256 kept;
* ``move``: the client moves (real time, ``speed_mps``) while a writer appends a numbered line
  to a log file in the mount and fsyncs it every 0.2 s; the phase ends at the sample that asks
  to migrate (its time, position and distance in the detail);
* the MigrateService phases in the trial's ``order`` (diff by default: RASP, ledger and the
  destination's self-evaluation before the stop, so they are not part of the downtime), with
  the downtime prober at both ends;
* ``reconnect``: the SMF thread re-locates the NMS and rewrites the server file; the phase
  ends when an fsync through the mount returns again;
* ``verify-files``: every file read back through the same mount and, after unmounting, through
  a fresh fuxfs mount (cold caches, so from the NMS at the destination): ``files_changed``
  counts files whose SHA-256 differs on either (must be 0); ``acked_writes_lost`` counts log
  lines whose fsync returned but which the fresh mount does not hold (must be 0).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.node.locate import ssp_resolver
from edgeferry.experiments.mobility import (
    EdgeSite,
    Point,
    Trajectory,
    decide,
    first_trigger,
)
from edgeferry.experiments.scenario import (
    PhaseResult,
    PhaseTimer,
    ScenarioContext,
    ScenarioUnavailable,
    TrialFailed,
    TrialResult,
)
from edgeferry.experiments.scenarios.nms_secure_migration import SERVICE, NmsSecureMigration
from edgeferry.experiments.workloads import NmsMobilityWorkload

REPO = Path(__file__).resolve().parents[3]
CLIENT_ID = "alice"
WRITE_PERIOD_S = 0.2
MOUNT_WAIT_S = 30.0


def _fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Fuxfs:
    """One fuxfs process mounted on ``mountpoint`` (the real command, as a user runs it)."""

    mountpoint: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def mount(cls, work: Path, name: str, args: list[str]) -> Fuxfs:
        mnt = work / name
        mnt.mkdir()
        log = work / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "agents.workloads.nms.fuxfs",
                                     str(mnt), *args], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=REPO)
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    proc.kill()
                raise TrialFailed(f"fuxfs did not mount {mnt} (exit {proc.poll()}): "
                                  f"{log.read_text(errors='replace')[-800:]}")
            time.sleep(0.05)
        return cls(mnt, proc, log)

    def unmount(self) -> int | None:
        """Unmount (fuxfs writes back and exits); its exit status."""
        tool = _fusermount()
        if tool and os.path.ismount(self.mountpoint):
            subprocess.run([tool, "-u", str(self.mountpoint)], check=False, timeout=60)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


@dataclass
class LogWriter:
    """Appends numbered lines to a file in the mount, fsync after each, in a child process
    (`edgeferry.experiments.fuxfs_log`); keeps the numbers whose fsync returned (acknowledged)
    and the longest wait for one.

    The open FUSE file lives in that child, not here: a process that forks while it holds a
    fuxfs file open makes the new process close it on exec, a FUSE flush, which waits for the
    NMS; while the NMS is migrating every subprocess this controller starts would hang there."""

    path: Path
    acked: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    longest_s: float = 0.0
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edgeferry.experiments.fuxfs_log", str(self.path),
             str(WRITE_PERIOD_S)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO)
        self._thread = threading.Thread(target=self._read, name="fuxfs-log", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit():
                self.longest_s = max(self.longest_s, float(fields[1]))
                self.acked.append(int(fields[0]))
            elif line.strip():
                self.errors.append(line.strip())

    def wait_for_ack_after(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.acked) <= count and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        return len(self.acked) > count

    def stop(self) -> None:
        """Stop writing; the child closes the file (its last flush) and exits."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            status = self._proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if status != 0:
            err = self._proc.stderr.read() if self._proc.stderr is not None else ""
            self.errors.append(f"the log writer exited {status}: {err.strip()[-300:]}")
        self._proc = None


class NmsClientMoves(NmsSecureMigration):
    workload: NmsMobilityWorkload

    def prepare(self, ctx: ScenarioContext) -> None:
        if _fusermount() is None or not Path("/dev/fuse").exists():
            raise ScenarioUnavailable("the fuxfs client needs FUSE on the controller: "
                                      "apt-get install fuse3 (and /dev/fuse)")
        m = self.workload.mobility
        self.sites = [EdgeSite(name, Point(*e.at), e.threshold_m) for name, e in m.edges.items()]
        self.path = Trajectory(tuple(Point(*p) for p in m.path), m.speed_mps)
        planned = first_trigger(self.path, self.workload.source, self.sites, m.step_s)
        if planned is None or planned[1].target != self.workload.destination:
            chose = "never leaves its edge" if planned is None else f"goes to {planned[1].target}"
            raise ScenarioUnavailable(
                f"along mobility.path the client {chose}; this part measures a move from "
                f"{self.workload.source} to {self.workload.destination}: change the path or "
                "the thresholds")
        super().prepare(ctx)

    def _locate(self) -> str:
        host, port = ssp_resolver(self._session, SERVICE)()
        return f"{host}:{port}"

    def run_trial(self, ctx: ScenarioContext, params: dict[str, Any]) -> TrialResult:
        w, eco = self.workload, self.eco
        setup = self.set_up_trial(ctx, params)
        timer = PhaseTimer(ctx.progress)
        work = Path(tempfile.mkdtemp(prefix="ef-fuxfs-"))
        server_file = work / "nms.address"
        key_file = work / "nms.key"
        key_file.touch(mode=0o600)
        key_file.write_text(eco.nms_key().hex())
        tls = eco.endpoints.tls
        assert tls is not None
        args = ["--server-file", str(server_file), "--key-file", str(key_file),
                "--ca-file", str(tls.ca_cert), "--client-id", CLIENT_ID,
                "--retry-deadline", "600", "--volume", "trip"]
        mounts: list[Fuxfs] = []
        writer: LogWriter | None = None
        mig: list[PhaseResult] = []
        before: list[PhaseResult] = []
        digests: dict[str, str] = {}
        try:
            with timer.phase("ssp") as ph:
                where = self._locate()
                _write_atomic(server_file, where)
                ph.detail = {"nms_at": where}
            with timer.phase("mount") as ph:
                mount = Fuxfs.mount(work, "mnt", args)
                mounts.append(mount)
                ph.detail = {"pid": mount.proc.pid}
            with timer.phase("write-files") as ph:
                per_file = max(1, params["volume_mb"] * 1_000_000 // params["files"])
                for i in range(params["files"]):
                    data = os.urandom(per_file)
                    target = mount.mountpoint / f"file{i:03d}.bin"
                    with target.open("wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    digests[target.name] = hashlib.sha256(data).hexdigest()
                ph.bytes = per_file * params["files"]
                ph.detail = {"files": params["files"], "bytes_per_file": per_file}
            writer = LogWriter(mount.mountpoint / "trip.log")
            writer.start()
            with timer.phase("move") as ph:
                trigger = self._move(ph)
            before = list(timer.phases)
            timer.phases = []
            report, mig, meter = self.migrate(ctx, params, before)
            with timer.phase("reconnect") as ph:
                acked_before = len(writer.acked)
                where = self._locate()
                _write_atomic(server_file, where)
                if not writer.wait_for_ack_after(acked_before, 120.0):
                    raise TrialFailed(f"no fsync through the mount returned within 120 s of "
                                      f"the NMS moving to {where}: {writer.errors[:1]}")
                ph.detail = {"nms_at": where, "same_fuxfs_pid": mount.proc.poll() is None}
            writer.stop()
            with timer.phase("verify-files") as ph:
                kept = mount.proc.poll() is None and os.path.ismount(mount.mountpoint)
                changed = {n for n, d in digests.items() if _sha(mount.mountpoint / n) != d}
                status = mount.unmount()
                fresh = Fuxfs.mount(work, "fresh", args)
                mounts.append(fresh)
                changed |= {n for n, d in digests.items() if _sha(fresh.mountpoint / n) != d}
                lines = set()
                with contextlib.suppress(OSError):
                    lines = {int(x) for x in (fresh.mountpoint / "trip.log").read_text().split()}
                lost = [n for n in writer.acked if n not in lines]
                ph.bytes = 2 * per_file * len(digests)
                ph.detail = {"files_checked": len(digests), "files_changed": sorted(changed),
                             "first_mount_exit": status, "acked_writes": len(writer.acked),
                             "acked_writes_lost": lost[:20], "write_errors": writer.errors[:5]}
        except TrialFailed as err:  # the migration's own failure carries its phases
            raise TrialFailed(str(err), err.phases or before + mig + timer.phases) from err
        except Exception as err:
            raise TrialFailed(f"{type(err).__name__}: {err}",
                              before + mig + timer.phases) from err
        finally:
            if writer is not None:
                writer.stop()
            for m in reversed(mounts):
                m.unmount()
            shutil.rmtree(work, ignore_errors=True)
        bound_metrics, measured = self.measured_metrics(mig, meter, setup)
        failed = bool(changed or lost or writer.errors or not kept)
        phases = before + mig + timer.phases
        if failed:
            phases[-1].outcome = "failed"
        return TrialResult(phases=phases, bandwidth_bps=setup.bandwidth.pull_bps, metrics={
            "files_changed": float(len(changed)), "files_checked": float(len(digests)),
            "acked_writes_lost": float(len(lost)), "acked_writes": float(len(writer.acked)),
            "mount_kept": float(kept), "longest_write_stall_s": writer.longest_s,
            "trigger_distance_m": trigger["distance_m"], "trigger_t_s": trigger["t_s"],
            **bound_metrics}, detail={
            "source": w.source, "destination": w.destination, "location": report.location,
            "epoch": report.epoch, "shaping": setup.shaping, **measured, "trigger": trigger,
            "image": self.handle.image,
            "method": "a real fuxfs mount on the controller; positions along mobility.path in "
                      "real time, checked every step_s against each edge's threshold (BloSM "
                      "Algorithm 3); MigrateService with the user's capabilities; downtime: "
                      "TLS handshakes with the NMS at both ends every 20 ms; files compared "
                      "by SHA-256 through the kept mount and a fresh one"})

    def _move(self, ph: PhaseResult) -> dict[str, Any]:
        """The SMF thread: every ``step_s`` it reads where the client is on its path (real
        time) and applies Algorithm 3's distance rule; the phase ends at the first sample that
        asks to migrate."""
        m, w = self.workload.mobility, self.workload
        start = time.monotonic()
        samples = 0
        while True:
            t = min(time.monotonic() - start, self.path.duration_s)
            decision = decide(self.path.position(t), w.source, self.sites)
            samples += 1
            if decision.migrate:
                break
            if t >= self.path.duration_s:
                raise TrialFailed(f"the client reached the end of its path after {t:.1f} s "
                                  f"without leaving {w.source}'s coverage for another edge's")
            time.sleep(m.step_s)
        if decision.target != w.destination:
            raise TrialFailed(f"at t = {t:.2f} s the client asked for {decision.target}, not "
                              f"this part's destination {w.destination}")
        ph.detail = {"t_s": t, "samples": samples,
                     "position": [decision.where.x, decision.where.y],
                     "distance_m": decision.distance_m, "threshold_m": decision.threshold_m,
                     "serving": decision.serving, "target": decision.target}
        return ph.detail
