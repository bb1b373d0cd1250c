"""Multi-architecture workload images on the real engine and a real local registry (loopback):
the amd64 and arm64 busybox bases pushed as two tags, one OCI image index written over them,
and the engine's own platform resolution of that index as the independent check.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agents.common.platforms import OCI_INDEX, select
from edgeferry.images.index_push import RegistryApi, publish_index
from edgeferry.images.multiarch import AMD64, ARM64, busybox_base_for
from edgeferry.images.registry import LocalRegistry
from edgeferry.lab.binfmt import ensure_qemu_aarch64
from tests.conftest import LabPKI

# the first test of a fresh engine builds the arm64 root filesystem (debootstrap, its second
# stage under qemu-user: 4-5 minutes on 2 cores; cached after) before its own work
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]
PREFIX = f"efmulti{os.getpid()}"


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    for image in client.images.list():
        for tag in image.tags:
            if f"/{PREFIX}/" in tag:
                client.images.remove(tag, force=True)


def _push(engine: Any, reg: LocalRegistry, local: str, repo: str, tag: str) -> None:
    engine.images.get(local).tag(repo, tag)
    for line in engine.api.push(repo, tag, auth_config=reg.auth_config, stream=True,
                                decode=True):
        assert "error" not in line, line


def test_one_index_serves_each_platform_its_own_variant(
    lab_pki: LabPKI, tmp_path: Path, engine: Any
) -> None:
    ensure_qemu_aarch64()
    built = {AMD64: busybox_base_for(AMD64), ARM64: busybox_base_for(ARM64)}
    with LocalRegistry.start(tmp_path / "reg", lab_pki.ca) as reg:
        repo_path = f"{PREFIX}/bb"
        repo = f"{reg.address}/{repo_path}"
        for plat, image in built.items():
            _push(engine, reg, image.tag, repo, f"v1-{plat.architecture}")
        api = RegistryApi(reg.address, reg.username, reg.password, reg.ca_cert)
        published = publish_index(api, repo_path, "v1",
                                  {p: f"v1-{p.architecture}" for p in built})
        status, body = reg.get(f"/v2/{repo_path}/manifests/v1", accept=OCI_INDEX)
        assert status == 200
        index = json.loads(body)
        assert index["mediaType"] == OCI_INDEX and len(index["manifests"]) == 2
        assert set(published.platforms) == {"linux/amd64", "linux/arm64"}
        # The registry's own digest of each variant tag is what the index and provenance name.
        for plat in built:
            status, raw = reg.get(f"/v2/{repo_path}/manifests/v1-{plat.architecture}",
                                  accept="application/vnd.docker.distribution.manifest.v2+json")
            assert status == 200
            digest = select(index, plat).digest
            assert published.platforms[str(plat)] == digest
            assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
        # The engine resolves the index itself: --platform picks the variant.
        for plat in (ARM64, AMD64):
            if engine.images.list(f"{repo}:v1"):
                engine.images.remove(f"{repo}:v1", force=True)
            engine.api.pull(repo, "v1", platform=str(plat), auth_config=reg.auth_config)
            assert engine.images.get(f"{repo}:v1").attrs["Architecture"] == plat.architecture
            out = engine.containers.run(f"{repo}:v1", ["uname", "-m"], remove=True,
                                        platform=str(plat))
            assert out.decode().strip() == {"amd64": "x86_64", "arm64": "aarch64"}[
                plat.architecture]
