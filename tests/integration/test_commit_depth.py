"""Commit depth against the real Docker engine: a container committed again and again through the
node agent's own code (NodeCore.commit -> DockerEngine.commit) with a LOW ``max_image_layers``.

What this proves: the committed image's layer count stays under the threshold however often the
service migrates (the old behaviour -- one more layer per commit -- is computed alongside and
exceeds it); a flattened image holds exactly the files of the container it was made from (file
list, type, mode, owner, link target and SHA-256 of every regular file, from ``docker export`` of
the stopped source container and of a fresh container of the new image); it carries the config a
plain ``docker commit`` of the same container records (checked against one, made with the Docker
SDK directly); it runs (each step runs the previous step's image and its command must succeed
and see the state so far); the commit phase's detail says it was flattened and how many bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.core import NodeCore, NodeOptions
from agents.node.engine import (
    LABEL_EPOCH,
    LABEL_MIGRATION,
    LABEL_WORKLOAD,
    DockerEngine,
    RegistryAccess,
)
from agents.node.flatten import OVERLAY_MAX_LAYERS, layers_after
from agents.node.gpu import NO_GPU
from agents.node.store import NodeStore
from edgeferry.images.base import busybox_base

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

PREFIX = f"efdepth{os.getpid()}-"
REPO = f"efdepth{os.getpid()}"
REGISTRY = "127.0.0.1:5999"  # never contacted: commit only names the image after it
COMMITS = 9
#: Each run: appends to a file of the base layer, writes new state, deletes a base file and an
#: older state file, re-points a symlink, adds a hardlink, a directory and a chmod.
SCRIPT = """set -e
test "$EF_GREETING" = "hello world"
test "$(pwd)" = /srv
echo "run $(hostname)" >> log
n=$(wc -l < log)
head -c 3000 /dev/urandom > state-$n
chmod 600 state-$n
rm -f delete-me state-$((n-2))
ln -sf state-$n latest
ln -f state-$n hard-$n
mkdir -p dir-$n && echo $n > dir-$n/f
"""
DOCKERFILE = """FROM {base}
RUN mkdir /srv && echo base > /srv/log && echo x > /srv/delete-me && chown -R 1000:1000 /srv
ENV EF_GREETING="hello world" EF_OTHER=1
WORKDIR /srv
USER 1000:1000
EXPOSE 8080 9090/udp
VOLUME /vol
LABEL org.example.app=depth
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "-c"]
"""
#: The engine-managed paths (mounted or created per container) and pseudo filesystems.
NOT_STATE = ("proc", "sys", "dev", ".dockerenv", "etc/hosts", "etc/hostname",
             "etc/resolv.conf", "etc/mtab", "vol")
CONFIG_FIELDS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Labels",
                 "Volumes", "StopSignal", "Healthcheck", "OnBuild", "Shell")


def files_of(client: Any, container_id: str) -> dict[str, tuple[Any, ...]]:
    """path -> (type, mode, uid, gid, link target, sha256 of a regular file's content)."""
    data = b"".join(client.api.export(container_id))
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if name.split("/")[0] in NOT_STATE or name in NOT_STATE or not name:
                continue
            sha = ""
            if m.isreg():
                handle = tar.extractfile(m)
                assert handle is not None
                sha = hashlib.sha256(handle.read()).hexdigest()
            link = m.linkname.removeprefix("./") if m.islnk() else m.linkname
            out[name] = (m.type, m.mode, m.uid, m.gid, link, sha)
    return out


def engine_client(prefix: str, repo: str) -> Iterator[Any]:
    """A Docker client; afterwards the containers named ``prefix``* and the images tagged
    under ``repo`` are removed."""
    c = docker.from_env()
    yield c
    for container in c.containers.list(all=True, filters={"name": prefix}):
        container.remove(force=True, v=True)
    tags = [t for image in c.images.list() for t in image.tags if repo in t]
    for tag in sorted(tags, reverse=True):  # children first: the chain goes with its tags
        c.images.remove(tag, force=True)


@pytest.fixture
def client() -> Iterator[Any]:
    yield from engine_client(PREFIX, REPO)


def test_commit_depth_stays_bounded_and_the_flattened_image_is_the_same(
        client: Any, tmp_path: Path) -> None:
    base_tag = busybox_base(lambda *_: None).tag
    base, _ = client.images.build(fileobj=io.BytesIO(DOCKERFILE.format(base=base_tag).encode()),
                                  tag=f"{REPO}/app:base", rm=True)
    base_layers = len(base.attrs["RootFS"]["Layers"])
    threshold = base_layers + 2  # one plain commit, then the next one flattens
    assert threshold <= 5
    engine = DockerEngine(RegistryAccess(REGISTRY, "u", "p", Path("/nonexistent")))
    core = NodeCore(engine, NodeStore.open(tmp_path / "node.sqlite3"),
                    NodeOptions(tmp_path, container_prefix=PREFIX, max_image_layers=threshold),
                    gpu=NO_GPU)

    image = f"{REPO}/app:base"
    layers_seen, flattened_at, old_layers = [], [], base_layers
    for step in range(1, COMMITS + 1):
        name = f"{PREFIX}svc"
        container = client.containers.run(image, [SCRIPT], name=name, detach=True,
                                          labels={LABEL_WORKLOAD: name})
        assert container.wait(timeout=60)["StatusCode"] == 0, container.logs()
        before = files_of(client, container.id)
        assert len([p for p in before if p.startswith("srv/state-")]) == min(step, 2)

        out = core.commit(pb.CommitContainerRequest(
            ref=pb.MigrationRef(migration_id=f"m{step}", epoch=1), name="svc",
            repository=f"{REPO}/app"))
        assert out.image_ref == f"{REGISTRY}/{REPO}/app:m{step}-1"
        committed = client.images.get(out.image_ref)
        layers = len(committed.attrs["RootFS"]["Layers"])
        old_layers += 1  # what the commit made before the fix: one more layer every time
        layers_seen.append(layers)

        if out.timing.detail.startswith("flattened"):
            flattened_at.append(step)
            assert layers == 1
            # the independent expectation: a plain `docker commit` of the same container
            # with the labels the commit phase adds
            labels = {**container.labels, LABEL_MIGRATION: f"m{step}", LABEL_EPOCH: "1"}
            plain = container.commit(repository=f"{REPO}/plain", tag=str(step),
                                     conf={"Labels": labels})
            for field in CONFIG_FIELDS:
                assert committed.attrs["Config"].get(field) == plain.attrs["Config"].get(field), \
                    field
            size = int(out.timing.detail.split(" of ")[1].split(" bytes")[0])
            assert size == sum(len(c) for c in client.api.export(container.id))
        else:
            assert layers == base_layers + 1 if step == 1 else layers == layers_seen[-2] + 1
        fresh = client.containers.create(out.image_ref, name=f"{PREFIX}check{step}")
        assert files_of(client, fresh.id) == before, f"step {step}: files differ"
        fresh.remove(v=True)
        container.remove(v=True)
        image = out.image_ref

    # the last image runs and sees all the state written so far
    last = client.containers.run(image, ["test $(wc -l < log) -eq 10 && test ! -e delete-me"],
                                 name=f"{PREFIX}last", detach=True)
    assert last.wait(timeout=60)["StatusCode"] == 0, last.logs()
    assert len(flattened_at) >= 3
    assert max(layers_seen) < threshold
    assert old_layers == base_layers + COMMITS > threshold
    # the same growth, continued, is what overlay2 refused in the 200-fault run
    assert layers_after(base_layers, COMMITS, None) == old_layers
    assert layers_after(base_layers, OVERLAY_MAX_LAYERS, None) > OVERLAY_MAX_LAYERS
    assert layers_after(base_layers, OVERLAY_MAX_LAYERS, threshold) < threshold
