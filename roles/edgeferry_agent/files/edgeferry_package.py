#!/usr/bin/env python3
"""Controller-side packaging for the edgeferry_agent role (standard library only).

`wheel`: build the project's wheel from the checkout's working tree (the default: tracked and
untracked-but-not-ignored files, so what a developer changed is what runs) or reproducibly from
a commit (--ref HEAD), keep it in --out only when its bytes changed, and list the agent modules
it contains (packages `agents/<name>/` with a `__main__.py`). The answer (also written to
<out>/build.json) names the commit it started from, whether the packaged files differ from it
(`dirty`) and `tree_sha256`, a digest of every packaged file's path and bytes.

`wheel --installed`: no checkout (edgeferry installed from its wheel, or used as a collection):
repack the controller's installed edgeferry distribution into a wheel from the files its RECORD
lists, each checked against the RECORD's hash (`dirty` when one differs or is missing), with the
same fixed timestamps, so an unchanged installation gives the same bytes on every deploy.

`wheelhouse`: download binary wheels of the agents' runtime requirements for one target
platform (CPU architecture, CPython version, glibc version) so hosts install offline. The
folder records what it was resolved for (resolved.json); the same requirement list again, with
its wheels present, is not resolved again (--refresh does). The folder may be shared by several
inventories' deploys: one at a time holds its lock, and records and archives are replaced whole.

Both print one JSON object on stdout; "changed" says whether anything on disk changed.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

# Fixed timestamp for the files inside the wheel, so equal sources give equal bytes.
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip archive can store
# Top-level folders that hold the packages listed in pyproject.toml.
PACKAGE_DIRS = {"edgeferry", "agents"}
_SKIP_DIRS = {".git", ".venv", "build", "dist", ".edgeferry", "__pycache__", "reports"}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(source: Path) -> list[Path]:
    """Files that make up the checkout: git's view when it is a repository, else a walk."""
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
        return sorted(Path(n) for n in names if (source / n).is_file())
    except (OSError, subprocess.CalledProcessError):
        found = []
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            found.extend(Path(root, f).relative_to(source) for f in files)
        return sorted(found)


def agent_modules(wheel: Path) -> list[str]:
    """Agent packages in the wheel that can run as `python -m agents.<name>`."""
    modules = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "agents" and parts[2] == "__main__.py":
                modules.add(f"agents.{parts[1]}")
    return sorted(modules)


def export_commit(source: Path, ref: str, tree: Path) -> str:
    """Write the files of `ref` (e.g. HEAD) into `tree`; return the full commit id."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--verify", f"{ref}^{{commit}}"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "-C", str(source), "archive", "--format=tar", commit, *sorted(PACKAGE_DIRS),
             "pyproject.toml", *[n for n in ("README.md", "LICENSE") if (source / n).exists()]],
            check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        stderr = getattr(err, "stderr", b"") or b""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        raise SystemExit(f"cannot export {ref} from {source}: {text.strip() or err}") from None
    tree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return commit


def copy_worktree(source: Path, tree: Path) -> None:
    """Copy the working tree's packages and top-level build files into `tree`."""
    for rel in source_files(source):
        if len(rel.parts) > 1 and rel.parts[0] not in PACKAGE_DIRS:
            continue  # only the packages and the top-level build files go into the wheel
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(source / rel, target)
        except FileNotFoundError:
            continue  # a temporary file that vanished while we copied


def tree_digest(tree: Path) -> str:
    """SHA-256 over the sorted (path, SHA-256 of the bytes) of every file under `tree`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree).as_posix()
        digest.update(f"{rel}\0{sha256_of(path)}\n".encode())
    return digest.hexdigest()


def head_and_dirty(source: Path) -> tuple[str | None, bool | None]:
    """(HEAD's commit id, whether the packaged paths differ from it), None when not git."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True,
                              text=True, check=False)

    head = git("rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        return None, None
    paths = [*sorted(PACKAGE_DIRS), "pyproject.toml", "setup.py"]
    status = git("status", "--porcelain", "--untracked-files=normal", "--", *paths)
    return head.stdout.strip(), bool(status.stdout.strip())


def build_wheel(source: Path, out: Path, python: str, ref: str = "") -> dict:
    """Build from the work tree (ref "", the default) or from commit `ref` (reproducible)."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="edgeferry-wheel-") as tmp:
        tree, dist = Path(tmp, "src"), Path(tmp, "dist")
        if ref:
            commit: str | None = export_commit(source, ref, tree)
            dirty: bool | None = False
            label = commit
        else:
            copy_worktree(source, tree)
            commit, dirty = head_and_dirty(source)
            label = "worktree" if commit is None else (
                f"worktree of {commit[:12]}" + (" (dirty)" if dirty else ""))
        tree_sha256 = tree_digest(tree)
        env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--wheel-dir", str(dist), str(tree)],
            capture_output=True, text=True, env=env,
        )
        if proc.returncode != 0:
            raise SystemExit(f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}")
        built = sorted(dist.glob("edgeferry-*.whl"))
        if len(built) != 1:
            raise SystemExit(f"expected one edgeferry wheel, found {[p.name for p in built]}")
        new = built[0]
        target = out / new.name
        changed = not target.exists() or sha256_of(target) != sha256_of(new)
        if changed:
            shutil.copyfile(new, target)
        for stale in out.glob("edgeferry-*.whl"):
            if stale.name != new.name:
                stale.unlink()
                changed = True
    result = {
        "changed": changed,
        "source": label,
        "commit": commit,
        "dirty": dirty,
        "tree_sha256": tree_sha256,
        "wheel": str(target),
        "wheel_name": target.name,
        "sha256": sha256_of(target),
        "agent_modules": agent_modules(target),
    }
    (out / "build.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


#: files an installer adds to the dist-info folder: not part of the wheel it installed
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def installed_files(dist_name: str = "edgeferry") -> tuple[metadata.Distribution, dict[str, bytes],
                                                            list[str]]:
    """The installed distribution, {path in the wheel: bytes} of its files (no scripts, no
    byte code, no installer records) and the paths whose bytes differ from (or are missing
    against) the hashes its RECORD lists."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{dist_name} is not installed for {sys.executable}: nothing to "
                         "repack (set edgeferry_agent_source_dir to a checkout)") from None
    files: dict[str, bytes] = {}
    changed: list[str] = []
    # the wheel's top-level packages (setuptools' top_level.txt), else the packages we ship
    tops = set((dist.read_text("top_level.txt") or "").split()) or PACKAGE_DIRS
    for entry in dist.files or []:
        rel = entry.as_posix()
        parts = entry.parts
        if not (parts[0] in tops or parts[0].endswith(".dist-info")) or "__pycache__" in parts \
                or rel.endswith(".pyc"):
            continue  # console scripts (pip makes them from entry_points.txt), byte code
        if parts[0].endswith(".dist-info") and parts[-1] in _INSTALLER_FILES:
            continue
        path = Path(str(dist.locate_file(entry)))
        try:
            data = path.read_bytes()
        except OSError:
            changed.append(rel)
            continue
        if entry.hash is None or entry.hash.mode != "sha256" or \
                _record_hash(data) != f"sha256={entry.hash.value}":
            changed.append(rel)
        files[rel] = data
    if not any(name.startswith("agents/") for name in files):
        raise SystemExit(f"the installed {dist_name} holds no agents package (an editable "
                         "install?): set edgeferry_agent_source_dir to its checkout")
    return dist, files, sorted(changed)


def write_wheel(target: Path, files: dict[str, bytes], info_dir: str) -> None:
    """A wheel of `files` with a fresh RECORD, fixed timestamps and sorted entries."""
    epoch = (1980, 1, 1, 0, 0, 0)
    partial = target.with_name(target.name + ".partial")
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in sorted(files.items())]
    record.append(f"{info_dir}/RECORD,,")
    entries = {**files, f"{info_dir}/RECORD": ("\n".join(record) + "\n").encode()}
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries, key=lambda n: (n.startswith(info_dir), n)):
            info = zipfile.ZipInfo(name, date_time=epoch)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    partial.replace(target)


def repack_installed(out: Path, dist_name: str = "edgeferry") -> dict:
    """Ship the controller's installed distribution: its files, repacked into a wheel."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    dist, files, changed_files = installed_files(dist_name)
    infos = sorted({n.split("/", 1)[0] for n in files if n.split("/", 1)[0].endswith(".dist-info")})
    if len(infos) != 1:
        raise SystemExit(f"expected one .dist-info folder in {dist_name}, found {infos}")
    name = dist.metadata["Name"].replace("-", "_")
    version = dist.version
    tags = [line.split(":", 1)[1].strip() for line in files[f"{infos[0]}/WHEEL"].decode()
            .splitlines() if line.startswith("Tag:")]
    wheel_name = f"{name}-{version}-{tags[0] if tags else 'py3-none-any'}.whl"
    digest = hashlib.sha256()
    for rel, data in sorted(files.items()):
        digest.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    with tempfile.TemporaryDirectory(prefix="edgeferry-repack-") as tmp:
        new = Path(tmp, wheel_name)
        write_wheel(new, files, infos[0])
        target = out / wheel_name
        changed = not target.exists() or sha256_of(target) != sha256_of(new)
        if changed:
            shutil.copyfile(new, target)
    for stale in out.glob("edgeferry-*.whl"):
        if stale.name != wheel_name:
            stale.unlink()
            changed = True
    direct = dist.read_text("direct_url.json")
    origin = json.loads(direct) if direct else {}
    installed_from = (origin.get("archive_info") or {}).get("hashes", {}).get("sha256")
    commit = (origin.get("vcs_info") or {}).get("commit_id")
    wheel_sha256 = sha256_of(target)
    state = f"{len(changed_files)} files changed since install" if changed_files else "intact"
    label = (f"installed {dist_name} {version} ({state}; repacked wheel sha256 {wheel_sha256}"
             + (f"; installed from an archive with sha256 {installed_from}" if installed_from
                else "") + ")")
    result = {
        "changed": changed,
        "source": label,
        "commit": commit,
        "dirty": bool(changed_files),
        "changed_files": changed_files[:50],
        "tree_sha256": digest.hexdigest(),
        "wheel": str(target),
        "wheel_name": wheel_name,
        "sha256": wheel_sha256,
        "agent_modules": agent_modules(target),
        "installed_at": str(dist.locate_file("")),
    }
    (out / "build.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def platform_tags(arch: str, glibc: str) -> list[str]:
    """manylinux tags a host with this glibc accepts, newest first (pip does not expand them)."""
    major, minor = (int(x) for x in glibc.split(".")[:2])
    if major != 2:
        raise SystemExit(f"unexpected glibc version {glibc}")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch in {"x86_64", "i686"}:
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def pin_to_controller(requirements: list[str], python_version: str | None = None) -> list[str]:
    """Pin each requirement to the version installed on the controller, when it is installed.

    Hosts then run exactly the versions the controller's tests ran with (generated protobuf code
    needs a protobuf runtime at least as new as the one it was generated for). For a host whose
    Python (``python_version``, e.g. "3.10" on JetPack 6) is not the controller's, a version the
    controller runs may not exist for it (packages drop a Python when it reaches its end of
    life): there each requirement keeps its own lower bound and is capped at the controller's
    version, so pip takes the newest release up to it that has a wheel for the host.
    """
    same_python = (python_version is None or
                   tuple(int(x) for x in python_version.split(".")[:2]) == sys.version_info[:2])
    pinned = []
    for req in requirements:
        name = req
        for sep in ("<", ">", "=", "!", "~", ";", "[", " "):
            name = name.split(sep, 1)[0]
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            pinned.append(req)
            continue
        if same_python:
            pinned.append(f"{name}=={version}")
        else:
            pinned.append(f"{req},<={version}" if req != name else f"{name}<={version}")
    return pinned


#: what a wheelhouse folder was last resolved for (the exact requirement list, pins included)
#: and the wheels it then held (those its archive holds): the same list again, with the same
#: wheels in the folder, is not resolved again (pip download asks the index on every run: 6-15 s
#: per platform on the lab's controller)
RESOLVED = "resolved.json"


def project_name(requirement: str) -> str:
    """The normalized project name of a requirement ("PyYAML>=6.0" -> "pyyaml")."""
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def tool_wheels(tools: list[str], wheels: list[str]) -> dict[str, str]:
    """The wheel of each tool (by normalized project name, and version where the tool is
    pinned with ==: the folder keeps the wheels of earlier pins) among the wheelhouse's
    files."""
    found = {}
    for tool in tools:
        name = project_name(tool)
        pinned = tool.split("==", 1)[1].strip() if "==" in tool else None
        matches = [w for w in wheels if project_name(w.split("-", 1)[0]) == name
                   and (pinned is None or w.split("-")[1] == pinned)]
        if len(matches) != 1:
            raise SystemExit(f"the wheelhouse holds {len(matches)} wheels of {name}, not one: "
                             f"{matches}")
        found[name] = matches[0]
    return found


def build_wheelhouse(out: Path, arch: str, python_version: str, glibc: str,
                     requirements: list[str], python: str, refresh: bool = False,
                     tools: list[str] | None = None) -> dict:
    """Download `requirements` (installed on the host) and `tools` (used by the deploy on the
    host, e.g. the installer uv, never installed into the agents' virtualenv) as wheels for the
    host's platform, into `out` and one archive of it.

    Deploys of several inventories share the folder: one at a time holds `<out>.lock` (flock,
    released when the process ends) while it reads the record, downloads and writes, so two
    never download into the folder at once nor archive the other's half-written wheels."""
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(out.with_name(out.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _build_wheelhouse(out, arch, python_version, glibc, requirements, python,
                                 refresh, tools or [])
    finally:
        os.close(fd)


def _build_wheelhouse(out: Path, arch: str, python_version: str, glibc: str,
                      requirements: list[str], python: str, refresh: bool,
                      tools: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    before = {p.name for p in out.glob("*.whl")}
    archive = out.with_name(out.name + ".tar")
    record = out / RESOLVED
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    if (not refresh and known.get("requirements") == requirements
            and known.get("tools", []) == tools
            and isinstance(known.get("wheels"), list) and known["wheels"]
            and set(known["wheels"]) == before and archive.exists()):
        return {"changed": False, "resolved": False, "wheelhouse": str(out),
                "wheels": sorted(known["wheels"]), "archive": str(archive),
                "requirements": requirements,
                "tools": tool_wheels(tools, sorted(known["wheels"]))}
    short = "".join(python_version.split(".")[:2])
    cmd = [python, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(out),
           "--implementation", "cp", "--python-version", python_version, "--abi", f"cp{short}",
           "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(arch, glibc):
        cmd += ["--platform", tag]
    cmd += requirements + tools
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"downloading the wheelhouse failed:\n{proc.stdout}\n{proc.stderr}")
    after = sorted(p.name for p in out.glob("*.whl"))
    if set(after) != before or not archive.exists():
        write_archive(archive, [out / name for name in after])
    partial = record.with_name(f"{RESOLVED}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"requirements": requirements, "tools": tools,
                                   "wheels": after}, indent=2) + "\n")
    partial.replace(record)
    return {"changed": set(after) != before, "resolved": True, "wheelhouse": str(out),
            "wheels": after, "archive": str(archive), "requirements": requirements,
            "tools": tool_wheels(tools, after)}


def write_archive(archive: Path, files: list[Path]) -> None:
    """One uncompressed tar of `files` (wheels are zips already) with fixed metadata, so a
    host receives the wheelhouse in one transfer instead of one per wheel."""
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    partial.replace(archive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wheel = sub.add_parser("wheel", help="build the project's wheel")
    wheel.add_argument("--source", type=Path, default=None,
                       help="the checkout to build (or --installed)")
    wheel.add_argument("--installed", action="store_true",
                       help="repack the installed edgeferry distribution (no checkout)")
    wheel.add_argument("--out", type=Path, required=True)
    wheel.add_argument("--ref", default="",
                       help='git commit to build (e.g. HEAD); "" (default) builds the working '
                            'tree')
    house = sub.add_parser("wheelhouse", help="download the runtime requirements")
    house.add_argument("--out", type=Path, required=True)
    house.add_argument("--arch", required=True)
    house.add_argument("--python-version", required=True)
    house.add_argument("--glibc", required=True)
    house.add_argument("--pin", action="store_true",
                       help="pin requirements to the versions installed on the controller")
    house.add_argument("--refresh", action="store_true",
                       help="resolve again even when the folder's last resolution matches")
    house.add_argument("--tool", action="append", default=[],
                       help="a requirement used by the deploy on the host (e.g. uv==0.13.9), "
                            "downloaded beside the runtime requirements but not one of them "
                            "(repeatable)")
    house.add_argument("requirements", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "wheel" and args.installed:
        result = repack_installed(args.out)
    elif args.command == "wheel":
        if args.source is None:
            parser.error("wheel needs --source CHECKOUT or --installed")
        result = build_wheel(args.source.resolve(), args.out, sys.executable, args.ref)
    else:
        reqs = (pin_to_controller(args.requirements, args.python_version) if args.pin
                else args.requirements)
        result = build_wheelhouse(args.out, args.arch, args.python_version, args.glibc,
                                  reqs, sys.executable, refresh=args.refresh,
                                  tools=args.tool)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
