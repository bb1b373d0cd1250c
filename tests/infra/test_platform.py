"""Workload platforms: every node agent runs the platform its inventory states
(`edgeferry_workload_platform`, "" = the engine's own; a lab profile with `workloads: class` sets
linux/arm64 on jetson-class hosts), and a host whose workloads are arm64 runs arm64 code, on the
host and in a container of its Docker engine (issue 19).

The arm64 program is a 132-byte static ELF written here by hand (AArch64: ``mov x0, #42;
mov x8, #93; svc #0`` = exit(42)): exit status 42 proves arm64 instructions ran, natively on a
Jetson, under qemu-user (binfmt_misc, fix-binary) on an emulated lab's x86_64 host. In the
container the image holds nothing but that file, so no interpreter is inside.
"""

from __future__ import annotations

import base64
import struct

import yaml

from tests.infra.conftest import group_hosts, hostvars

EXIT = 42


def arm64_exit_program(status: int) -> bytes:
    """A static AArch64 ELF executable that exits with ``status``."""
    code = struct.pack("<III", 0xD2800000 | (status << 5), 0xD2800000 | (93 << 5) | 8,
                       0xD4000001)
    base, headers = 0x400000, 64 + 56
    size = headers + len(code)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack(
        "<HHIQQQIHHHHHH", 2, 183, 1, base + headers, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


def _workload_platform(inventory: dict, name: str) -> str:
    return str(hostvars(inventory, name).get("edgeferry_workload_platform", ""))


def test_node_agent_runs_the_platform_its_inventory_states(host, inventory, name):
    if name not in group_hosts(inventory, "edge"):
        return  # only edge hosts run a node agent
    with host.sudo():
        settings = yaml.safe_load(host.file("/etc/edgeferry/node.yaml").content_string)
    assert settings["settings"]["platform"] == _workload_platform(inventory, name)


def test_arm64_workload_hosts_run_arm64_code_on_the_host_and_in_containers(host, inventory, name):
    if _workload_platform(inventory, name) != "linux/arm64":
        return
    blob = base64.b64encode(arm64_exit_program(EXIT)).decode()
    with host.sudo():
        host.check_output(
            "d=$(mktemp -d) && python3 -c \"import base64,sys; open(sys.argv[1],'wb')"
            f".write(base64.b64decode('{blob}'))\" $d/a64 && chmod 755 $d/a64 && "
            "tar -C $d -c a64 | docker import --change 'CMD [\"/a64\"]' - "
            "edgeferry-verify/arm64-exit:1 >/dev/null && cp $d/a64 /tmp/edgeferry-a64 && "
            "rm -rf $d")
        try:
            assert host.run("/tmp/edgeferry-a64").rc == EXIT
            assert host.run("docker run --rm edgeferry-verify/arm64-exit:1").rc == EXIT
        finally:
            host.run("rm -f /tmp/edgeferry-a64; docker rmi edgeferry-verify/arm64-exit:1")
