"""The controller-side packaging helper of the edgeferry_agent role."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[3] / "roles/edgeferry_agent/files/edgeferry_package.py"


@pytest.fixture(scope="module")
def pkg():
    spec = importlib.util.spec_from_file_location("edgeferry_package", HELPER)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_platform_tags_cover_older_manylinux(pkg):
    tags = pkg.platform_tags("aarch64", "2.31")
    assert tags[0] == "manylinux_2_31_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and "manylinux1_aarch64" not in tags
    assert "manylinux1_x86_64" in pkg.platform_tags("x86_64", "2.36")


def test_pin_to_controller_uses_installed_versions(pkg):
    import yaml

    pinned = pkg.pin_to_controller(["PyYAML>=6.0", "surely-not-installed-pkg>=1"])
    assert pinned == [f"PyYAML=={yaml.__version__}", "surely-not-installed-pkg>=1"]
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert pkg.pin_to_controller(["PyYAML>=6.0"], here) == [f"PyYAML=={yaml.__version__}"]


def test_a_host_on_another_python_is_capped_at_the_controllers_versions_not_pinned(pkg):
    # JetPack 6's Python 3.10: a release the controller runs may have dropped 3.10, so each
    # requirement keeps its floor and is capped at the controller's version
    import yaml

    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    assert pkg.pin_to_controller(["PyYAML>=6.0", "PyYAML", "surely-not-installed-pkg>=1"],
                                 other) == [f"PyYAML>=6.0,<={yaml.__version__}",
                                            f"PyYAML<={yaml.__version__}",
                                            "surely-not-installed-pkg>=1"]


def test_agent_modules_lists_runnable_agent_packages(pkg, tmp_path: Path):
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("agents/ras/__main__.py", "")
        z.writestr("agents/ras/domain.py", "")
        z.writestr("agents/common/errors.py", "")
        z.writestr("agents/x/y/__main__.py", "")
    assert pkg.agent_modules(wheel) == ["agents.ras"]


def make_project(root: Path) -> None:
    (root / "agents" / "demo").mkdir(parents=True)
    (root / "edgeferry").mkdir()
    (root / "agents" / "__init__.py").write_text("")
    (root / "agents" / "demo" / "__init__.py").write_text("")
    (root / "agents" / "demo" / "__main__.py").write_text("print('demo')\n")
    (root / "edgeferry" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "edgeferry"\nversion = "0.0.1"\n'
        '[tool.setuptools.packages.find]\ninclude = ["edgeferry*", "agents*"]\n')
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@e",
                    "commit", "-qm", "init"], check=True)


def test_build_wheel_is_reproducible_and_builds_the_commit(pkg, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_project(src)
    first = pkg.build_wheel(src, out, sys.executable, "HEAD")
    assert first["changed"] and first["agent_modules"] == ["agents.demo"]
    assert len(first["source"]) == 40
    # Uncommitted work is not in a HEAD build, and an identical rebuild changes nothing.
    (src / "agents" / "demo" / "__main__.py").write_text("print('edited')\n")
    second = pkg.build_wheel(src, out, sys.executable, "HEAD")
    assert not second["changed"] and second["sha256"] == first["sha256"]
    # The working-tree build picks the edit up.
    third = pkg.build_wheel(src, out, sys.executable, "")
    assert third["changed"] and third["source"] == f"worktree of {first['commit'][:12]} (dirty)"
    with zipfile.ZipFile(third["wheel"]) as z:
        assert z.read("agents/demo/__main__.py") == b"print('edited')\n"


def _digest_by_hand(files: dict[str, bytes]) -> str:
    import hashlib
    lines = "".join(f"{name}\0{hashlib.sha256(data).hexdigest()}\n"
                    for name, data in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_a_worktree_build_records_its_commit_dirty_flag_and_tree_digest(pkg, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_project(src)
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    clean = pkg.build_wheel(src, out, sys.executable, "")   # the default: the working tree
    assert (clean["commit"], clean["dirty"]) == (head, False)
    packaged = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*")
                if p.is_file() and ".git" not in p.parts}
    assert clean["tree_sha256"] == _digest_by_hand(packaged)
    # an untracked module under agents/ makes the tree dirty and changes the digest
    (src / "agents" / "demo" / "extra.py").write_text("X = 1\n")
    dirty = pkg.build_wheel(src, out, sys.executable, "")
    assert dirty["dirty"] is True and dirty["commit"] == head
    packaged["agents/demo/extra.py"] = b"X = 1\n"
    assert dirty["tree_sha256"] == _digest_by_hand(packaged) != clean["tree_sha256"]
    # build.json beside the wheel says the same
    import json
    assert json.loads((out / "build.json").read_text())["tree_sha256"] == dirty["tree_sha256"]
    # a commit build is never dirty
    assert pkg.build_wheel(src, out, sys.executable, "HEAD")["dirty"] is False


def test_the_wheelhouse_archive_holds_every_wheel_byte_for_byte(pkg, tmp_path: Path):
    import tarfile
    house = tmp_path / "house"
    house.mkdir()
    wheels = {"a-1-py3-none-any.whl": b"A" * 1000, "b-2-cp311-abi3-x.whl": bytes(range(256))}
    for name, data in wheels.items():
        (house / name).write_bytes(data)
    archive = tmp_path / "house.tar"
    pkg.write_archive(archive, sorted(house.glob("*.whl")))
    with tarfile.open(archive) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        assert all(m.mtime == 0 and m.mode == 0o644 for m in tar.getmembers())
    assert got == wheels
    first = archive.read_bytes()
    pkg.write_archive(archive, sorted(house.glob("*.whl")))
    assert archive.read_bytes() == first   # same wheels, same bytes (no spurious change)


def test_a_wheelhouse_is_resolved_again_only_when_its_record_no_longer_matches(pkg, tmp_path: Path):
    """pip download asks the index on every run; the folder's record of its last resolution
    spares that when the same requirements meet the same wheels (a new lab, a forced deploy)."""
    import json
    import tarfile
    calls = tmp_path / "calls"
    fake_python = tmp_path / "python"
    # stands in for `python -m pip download ... --dest DIR REQS`: one wheel per requirement
    fake_python.write_text(
        "#!/usr/bin/env python3\n"
        "import sys, pathlib\n"
        "args = sys.argv[1:]\n"
        f"open({str(calls)!r}, 'a').write(' '.join(args) + '\\n')\n"
        "dest = pathlib.Path(args[args.index('--dest') + 1])\n"
        "for req in [a for a in args if '==' in a]:\n"
        "    name, version = req.split('==')\n"
        "    (dest / f'{name}-{version}-py3-none-any.whl').write_bytes(req.encode())\n")
    fake_python.chmod(0o755)
    out = tmp_path / "house" / "x86_64-cp3.11-glibc2.36"

    def house(reqs: list[str], refresh: bool = False) -> dict:
        return pkg.build_wheelhouse(out, "x86_64", "3.11", "2.36", reqs, str(fake_python),
                                    refresh=refresh)

    def pip_runs() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    first = house(["a==1", "b==2"])
    assert (first["resolved"], first["changed"], pip_runs()) == (True, True, 1)
    with tarfile.open(first["archive"]) as tar:
        assert sorted(tar.getnames()) == ["a-1-py3-none-any.whl", "b-2-py3-none-any.whl"]
    assert json.loads((out / "resolved.json").read_text())["requirements"] == ["a==1", "b==2"]

    again = house(["a==1", "b==2"])
    assert (again["resolved"], again["changed"], pip_runs()) == (False, False, 1)
    assert again["wheels"] == first["wheels"] and again["archive"] == first["archive"]

    assert house(["a==1", "b==3"])["resolved"] and pip_runs() == 2   # another pin
    with tarfile.open(out.with_name(out.name + ".tar")) as tar:
        assert "b-3-py3-none-any.whl" in tar.getnames()
    assert not house(["a==1", "b==3"])["resolved"] and pip_runs() == 2
    (out / "a-1-py3-none-any.whl").unlink()                          # a wheel went missing
    assert house(["a==1", "b==3"])["resolved"] and pip_runs() == 3
    assert house(["a==1", "b==3"], refresh=True)["resolved"] and pip_runs() == 4
    (out / "resolved.json").write_text("{not json")                 # a torn record
    assert house(["a==1", "b==3"])["resolved"] and pip_runs() == 5


def test_a_deploy_tool_is_downloaded_into_the_wheelhouse_and_named_apart(pkg, tmp_path: Path):
    """The installer the hosts run (uv) travels in the wheelhouse archive but is reported apart
    from the requirements, which are what the role installs into the agents' virtualenv."""
    import json
    import tarfile
    fake_python = tmp_path / "python"
    fake_python.write_text(
        "#!/usr/bin/env python3\n"
        "import sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "dest = pathlib.Path(args[args.index('--dest') + 1])\n"
        "for req in [a for a in args if '==' in a]:\n"
        "    name, version = req.split('==')\n"
        "    tag = 'py3-none-manylinux_2_17_x86_64' if name == 'uv' else 'py3-none-any'\n"
        "    (dest / f'{name.replace(\"-\", \"_\")}-{version}-{tag}.whl').write_bytes(b'w')\n")
    fake_python.chmod(0o755)
    out = tmp_path / "house" / "x86_64-cp3.11-glibc2.36"
    reqs = ["PyYAML==6.0.4", "grpcio-health-checking==1.85.1"]
    first = pkg.build_wheelhouse(out, "x86_64", "3.11", "2.36", reqs, str(fake_python),
                                 tools=["uv==0.13.9"])
    assert first["requirements"] == reqs
    assert first["tools"] == {"uv": "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"}
    with tarfile.open(first["archive"]) as tar:
        assert "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl" in tar.getnames()
    assert json.loads((out / "resolved.json").read_text())["tools"] == ["uv==0.13.9"]
    kept = pkg.build_wheelhouse(out, "x86_64", "3.11", "2.36", reqs, str(fake_python),
                                tools=["uv==0.13.9"])
    assert not kept["resolved"] and kept["tools"] == first["tools"]
    # another tool pin resolves again; a record without the tool (an older cache) does too
    assert pkg.build_wheelhouse(out, "x86_64", "3.11", "2.36", reqs, str(fake_python),
                                tools=["uv==0.14.0"])["resolved"]
    # a tool the index did not give a wheel of is an error naming it
    with pytest.raises(SystemExit, match="wheels of ruff"):
        pkg.tool_wheels(["ruff==1"], first["wheels"])


def test_requirement_names_are_normalized_as_the_packaging_spec_says(pkg):
    assert [pkg.project_name(r) for r in
            ["PyYAML>=6.0", "grpcio_health.checking==1", "uv", "docker[ssh]>=7", "a ; x"]] == \
        ["pyyaml", "grpcio-health-checking", "uv", "docker", "a"]


def test_the_lab_hosts_and_the_setup_script_pin_the_same_installer():
    """edgeferry.sh installs the controller's virtualenv with uv and the agent role installs the
    hosts' with uv: one version, so the hosts never run an installer the suite did not."""
    import re

    import yaml
    repo = Path(__file__).resolve().parents[3]
    script = re.search(r"^UV_REQUIREMENT=(\S+)$", (repo / "edgeferry.sh").read_text(), re.M)
    defaults = yaml.safe_load((repo / "roles/edgeferry_agent/defaults/main.yml").read_text())
    assert script is not None, "edgeferry.sh names no UV_REQUIREMENT"
    assert re.fullmatch(r"uv==\d+\.\d+\.\d+", script.group(1)), script.group(1)
    assert defaults["edgeferry_agent_installer"] == script.group(1)


def test_two_deploys_sharing_a_wheelhouse_download_one_after_the_other(tmp_path: Path):
    """Two processes resolving into one folder at once (two inventories deployed together):
    the stand-in pip logs when each download starts and ends, and takes a second, so downloads
    that overlapped would show as two starts in a row."""
    import json
    log = tmp_path / "log"
    fake_python = tmp_path / "python"
    fake_python.write_text(
        "#!/usr/bin/env python3\n"
        "import os, sys, pathlib, time\n"
        "args = sys.argv[1:]\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "log.write(f'start {os.getpid()}\\n')\n"
        "time.sleep(1.0)\n"
        "dest = pathlib.Path(args[args.index('--dest') + 1])\n"
        "for req in [a for a in args if '==' in a]:\n"
        "    name, version = req.split('==')\n"
        "    (dest / f'{name}-{version}-py3-none-any.whl').write_bytes(req.encode())\n"
        "log.write(f'end {os.getpid()}\\n')\n")
    fake_python.chmod(0o755)
    out = tmp_path / "house" / "x86_64-cp3.11-glibc2.36"
    deploy = (
        "import importlib.util, json, pathlib, sys\n"
        f"spec = importlib.util.spec_from_file_location('p', {str(HELPER)!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        f"print(json.dumps(m.build_wheelhouse(pathlib.Path({str(out)!r}), 'x86_64', '3.11',"
        f" '2.36', [sys.argv[1]], {str(fake_python)!r})))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", deploy, f"a=={n}"], stdout=subprocess.PIPE,
                              text=True) for n in (1, 2)]
    answers = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["start", "end", "start", "end"], events
    assert all(a["resolved"] for a in answers)
    recorded = json.loads((out / "resolved.json").read_text())["wheels"]
    assert recorded in ([a["wheels"] for a in answers])  # the later one's, written whole
