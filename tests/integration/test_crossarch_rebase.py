"""Cross-architecture re-base on the real engine: a synthetic service's state committed on amd64
moves onto the arm64 variant and back with the same diff content; ELF files in the diff are
refused by name. Independent checks: ``uname -m`` and ``sha256sum`` run inside the re-based
containers (under qemu-user for arm64), and the engine's own diff_id verification on load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agents.node.crossarch import rebase_image, scan_diff
from agents.node.rebase import ArchitectureSpecific
from edgeferry.images.multiarch import AMD64, ARM64
from edgeferry.images.synthetic import SyntheticRecipe, synthetic_image
from edgeferry.lab.binfmt import ensure_qemu_aarch64

# the first test of a fresh engine builds the arm64 root filesystem (debootstrap, its second
# stage under qemu-user: 4-5 minutes on 2 cores; cached after) before its own work
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]
PREFIX = f"efrebase{os.getpid()}"
STATE_SHA = ["sh", "-c", "uname -m; sha256sum /state/diff | cut -d' ' -f1"]


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)
    for image in client.images.list(name=f"{PREFIX}/*"):
        for tag in image.tags:
            client.images.remove(tag, force=True)


def _commit_state(engine: Any, image: str, name: str, extra: str = "") -> tuple[str, str]:
    """Run the synthetic workload until it wrote its state, stop, commit; (tag, state sha)."""
    out = engine.containers.run(
        image, ["sh", "-c", "/bin/sh /entrypoint.sh & sleep 1; "
                f"{extra} sha256sum /state/diff | cut -d' ' -f1"],
        entrypoint=[], name=f"{PREFIX}-{name}", environment={"EF_STATE_DIFF_BYTES": "65536"})
    container = engine.containers.get(f"{PREFIX}-{name}")
    container.commit(repository=f"{PREFIX}/svc", tag=name)
    return f"{PREFIX}/svc:{name}", out.decode().strip()


def test_state_moves_amd64_to_arm64_and_back_unchanged(engine: Any) -> None:
    ensure_qemu_aarch64()
    recipe = SyntheticRecipe(total_bytes=1_000_000)
    amd, arm = synthetic_image(recipe, platform=AMD64), synthetic_image(recipe, platform=ARM64)
    committed, sha = _commit_state(engine, amd.tag, "amd")
    before, elves = scan_diff(engine, committed, amd.tag)
    assert elves == []
    out = rebase_image(engine, committed, source_base=amd.tag, dest_base=arm.tag,
                       target=f"{PREFIX}/svc:arm")
    assert out["architecture"] == "arm64" and out["diff_content_digest"] == before
    ran = engine.containers.run(f"{PREFIX}/svc:arm", STATE_SHA, entrypoint=[], remove=True,
                                platform=str(ARM64)).decode().split()
    assert ran == ["aarch64", sha]
    back = rebase_image(engine, f"{PREFIX}/svc:arm", source_base=arm.tag, dest_base=amd.tag,
                        target=f"{PREFIX}/svc:back")
    assert back["architecture"] == "amd64" and back["diff_content_digest"] == before
    ran = engine.containers.run(f"{PREFIX}/svc:back", STATE_SHA, entrypoint=[],
                                remove=True).decode().split()
    assert ran == ["x86_64", sha]


def test_a_diff_with_an_executable_is_refused_naming_it(engine: Any) -> None:
    recipe = SyntheticRecipe(total_bytes=1_000_000)
    amd, arm = synthetic_image(recipe, platform=AMD64), synthetic_image(recipe, platform=ARM64)
    committed, _ = _commit_state(engine, amd.tag, "elf", extra="cp /bin/busybox /state/tool;")
    with pytest.raises(ArchitectureSpecific, match=r"/state/tool \(x86_64\)"):
        rebase_image(engine, committed, source_base=amd.tag, dest_base=arm.tag,
                     target=f"{PREFIX}/svc:never")
    assert not engine.images.list(name=f"{PREFIX}/svc:never")
