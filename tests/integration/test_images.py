"""Locally built workload images on the real engine: bases, synthetic layers, NMS image."""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agents.node.engine import MANIFEST_V2
from edgeferry.images.base import busybox_base
from edgeferry.images.common import save_image
from edgeferry.images.nms import (
    CERT_PATH_IN_CONTAINER,
    KEY_PATH_IN_CONTAINER,
    NMS_UID,
    TLS_KEY_PATH_IN_CONTAINER,
    nms_image,
)
from edgeferry.images.registry import LocalRegistry
from edgeferry.images.synthetic import MB, SyntheticRecipe, synthetic_image
from tests.conftest import LabPKI
from tests.nms_tls import issue_nms_cert

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
PREFIX = f"efnode-img{os.getpid()}"


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)
    for image in client.images.list():
        for tag in image.tags:
            if f"/{PREFIX}/" in tag:
                client.images.remove(tag, force=True)


def test_busybox_base_is_tiny_and_cached(engine: Any) -> None:
    first = busybox_base()
    again = busybox_base()
    assert again.cached and again.image_id == first.image_id
    assert engine.images.get(first.tag).attrs["Size"] < 5_000_000
    out = engine.containers.run(first.tag, ["sh", "-c", "echo hi"], name=f"{PREFIX}-bb",
                                remove=False)
    assert out == b"hi\n"


def test_synthetic_layers_are_incompressible_and_the_container_stops_at_once(
    lab_pki: LabPKI, tmp_path: Path, engine: Any
) -> None:
    recipe = SyntheticRecipe(total_bytes=4 * MB, layers=2, state_diff_bytes=1000)
    built = synthetic_image(recipe)
    with LocalRegistry.start(tmp_path / "reg", lab_pki.ca) as reg:
        repo = f"{reg.address}/{PREFIX}/syn"
        engine.images.get(built.tag).tag(repo, "v1")
        for line in engine.api.push(repo, "v1", auth_config=reg.auth_config, stream=True,
                                    decode=True):
            assert "error" not in line, line
        status, body = reg.get(f"/v2/{PREFIX}/syn/manifests/v1", accept=MANIFEST_V2)
        assert status == 200
        sizes = [layer["size"] for layer in json.loads(body)["layers"]]
        random_layers = sorted(sizes)[-2:]
        for size, raw in zip(random_layers, sorted(recipe.layer_sizes()), strict=True):
            assert raw <= size <= raw * 1.01 + 4096  # gzip cannot shrink random bytes
    container = engine.containers.run(built.tag, detach=True, name=f"{PREFIX}-syn",
                                      ports={"8080/tcp": ("127.0.0.1", None)})
    time.sleep(0.5)
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 2.0
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    diff = {d["Path"] for d in container.diff()}
    assert "/state/diff" in diff


def test_nms_image_runs_unprivileged_and_carries_no_key(tmp_path: Path, engine: Any,
                                                        lab_pki: LabPKI) -> None:
    built = nms_image()
    config = engine.images.get(built.tag).attrs["Config"]
    assert config["User"] == f"{NMS_UID}:{NMS_UID}"
    assert not any("KEY=" in e for e in config.get("Env") or [])
    key = tmp_path / "nms.key"
    key.write_text(os.urandom(32).hex())
    tls = issue_nms_cert(lab_pki.ca, tmp_path / "tls")
    files = {KEY_PATH_IN_CONTAINER: key, CERT_PATH_IN_CONTAINER: tls.issued.cert_path,
             TLS_KEY_PATH_IN_CONTAINER: tls.issued.key_path}
    for path in files.values():  # as the node agent writes secret files
        path.chmod(0o400)
        os.chown(path, NMS_UID, NMS_UID)
    container = engine.containers.run(
        built.tag, detach=True, name=f"{PREFIX}-nms",
        mounts=[docker.types.Mount(inside, str(path), type="bind", read_only=True)
                for inside, path in files.items()])
    deadline = time.monotonic() + 15
    while b"serving" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"serving 8192-byte blocks" in container.logs(), container.logs()
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 2.0
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0


def test_a_saved_image_is_named_by_the_tag_asked_for_even_with_another_tag_first(
    tmp_path: Path, engine: Any
) -> None:
    """The lab registry publish and the ledger scenario ship images as `docker save` archives;
    the receiving engine knows the image by the archive's RepoTags. An image holding a second
    tag that the engine lists first (here one that sorts before ``edgeferry/``) must still
    travel under the tag asked for."""
    built = busybox_base()
    other = f"aaa/{PREFIX}/bb"
    engine.images.get(built.tag).tag(other, "first")
    try:
        tags = engine.images.get(built.tag).tags
        assert tags[0] == f"{other}:first", tags  # the situation in which named=True misnames
        archive = tmp_path / "image.tar"
        with archive.open("wb") as fh:
            save_image(built.tag, fh)
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            manifest = json.load(member)
        assert [entry["RepoTags"] for entry in manifest] == [[built.tag]]
    finally:
        engine.images.remove(f"{other}:first")
