"""Provenance of a run: what code, on what machine, against which lab, with which packages."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeferry import __version__


def git_revision(repo: Path) -> dict[str, Any]:
    """`git rev-parse HEAD` and whether the work tree has uncommitted changes."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"revision": None, "dirty": None, "error": head.stderr.strip()[:200]}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"revision": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"revision": None, "dirty": None, "error": str(err)[:200]}


def deployed_code(manifests: Path) -> dict[str, Any]:
    """Per host, the code the deploy shipped (from the controller's copies of the deployment
    manifests, ``<state>/manifests/<host>.json``): wheel digest, the commit it was built from,
    the dirty flag and the packaged tree's digest. Empty when nothing was deployed."""
    out: dict[str, Any] = {}
    for path in sorted(manifests.glob("*.json")) if manifests.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            out[path.stem] = {"error": f"{path}: {err}"[:300]}
            continue
        build = doc.get("build") if isinstance(doc.get("build"), dict) else {}
        out[path.stem] = {"wheel": doc.get("wheel"), "wheel_sha256": doc.get("wheel_sha256"),
                          "source": doc.get("source"), **build}
    return out


def host_facts() -> dict[str, Any]:
    import psutil

    mem = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "system": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_bytes": mem.total,
        "load_average": list(psutil.getloadavg()),
        "boot_time": psutil.boot_time(),
    }


def package_versions() -> dict[str, str]:
    """`pip freeze`-style name -> version of every installed distribution."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        # PackageMetadata has .get() only from Python 3.12 on; get_all() is the 3.11 spelling
        names: list[str] = dist.metadata.get_all("Name") or []
        if names and names[0]:
            out[names[0]] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def lab_facts(state: Any) -> dict[str, Any] | None:
    """Lab configuration and the bandwidth measured at `lab up` (from the lab state)."""
    if state is None:
        return None
    return {
        "name": state.name,
        "fingerprint": state.fingerprint,
        "image": state.image,
        "spec": state.spec,
        "hosts": state.hosts,
        "bandwidth": state.bandwidth,
        "timings": state.timings,
    }


def collect(repo: Path | None, *, lab_state: Any = None,
            argv: list[str] | None = None) -> dict[str, Any]:
    """What a run's results were made with; `repo` None: edgeferry runs from an installed wheel
    (no git revision; the package's location instead)."""
    return {
        "edgeferry_version": __version__,
        "git": git_revision(repo) if repo is not None else {
            "revision": None, "dirty": None,
            "installed": str(Path(__file__).resolve().parents[1])},
        "host": host_facts(),
        "lab": lab_facts(lab_state),
        "packages": package_versions(),
        "argv": list(argv if argv is not None else sys.argv),
        "collected_at": time.time(),
        "clock": "time.monotonic() around each phase (wall time); time.time() for timestamps",
    }


def measured_bandwidth_bps(lab: dict[str, Any] | None) -> float | None:
    """The slowest measured edge-link mean (bit/s) from provenance lab facts, if measured."""
    if not lab:
        return None
    means = [entry[d]["mean_bps"] for entry in (lab.get("bandwidth") or {}).values()
             for d in ("up", "down") if isinstance(entry.get(d), dict)]
    return min(means) if means else None


#: run.json provenance key of the data-audit policies in force (seed 002)
AUDIT_POLICIES = "audit_policies"


def record_audit_policies(run_dir: Path, part: str, service: str, requirements: dict[str, str],
                          source: str, edges: dict[str, dict[str, str]]) -> None:
    """Put the policies a part ran under into run.json's provenance: the container policy of
    its service (and where it came from) and every edge's attributes as registered."""
    from edgeferry.experiments.results import RunDir

    rd = RunDir.open(run_dir)
    prov = rd.read_info().get("provenance") or {}
    entry = prov.setdefault(AUDIT_POLICIES, {"containers": {}, "edges": {}})
    entry["containers"][part] = {"service": service, "source": source,
                                 "requirements": dict(requirements)}
    entry["edges"].update({host: dict(attrs) for host, attrs in edges.items()})
    rd.update_info(provenance=prov)


#: run.json provenance key of the multi-architecture images a run published (issue 19)
IMAGES = "images"


def record_images(run_dir: Path, part: str, published: dict[str, Any]) -> None:
    """Put a published image index into run.json's provenance: its reference, its digest and
    the digest of each platform's image (`index_push.PublishedIndex.provenance`)."""
    from edgeferry.experiments.results import RunDir

    rd = RunDir.open(run_dir)
    prov = rd.read_info().get("provenance") or {}
    prov.setdefault(IMAGES, {})[part] = dict(published)
    rd.update_info(provenance=prov)
