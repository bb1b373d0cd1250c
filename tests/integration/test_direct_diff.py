"""The direct order's diff against the real Docker engine: a stopped container's changes
streamed by the node agent's own code (NodeCore.export_diff -> direct.export_diff), kept by
import_diff, and loaded (load_diff: checked against RASP step 10's digest) on the image the
container ran from, as a destination does.

The independent expectation is the engine's own view: the new image's filesystem must equal
``docker export`` of the stopped source container (every path's type, mode, owner, link target and
content hash), and its config the one a plain ``docker commit`` of the same container records.
The container's script modifies, adds, deletes, replaces a directory (opaque) and changes modes.
Hard links arrive as copies of their target (difflayer.py says so): compared by content.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agents._proto.edgeferry.node.v1 import node_service_pb2 as pb
from agents.node.core import NodeCore, NodeOptions
from agents.node.domain import DigestMismatch, NotFound
from agents.node.engine import DockerEngine, RegistryAccess
from agents.node.gpu import NO_GPU
from agents.node.store import NodeStore
from edgeferry.images.base import busybox_base
from tests.integration.test_commit_depth import CONFIG_FIELDS, NOT_STATE, engine_client

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

PREFIX = f"efdirect{os.getpid()}-"
REPO = f"efdirect{os.getpid()}"
REGISTRY = "127.0.0.1:5999"  # never contacted: the image is only named after it
DOCKERFILE = """FROM {base}
RUN mkdir -p /srv/cache /srv/gone/deep /srv/remade /srv/keep /run/secrets \\
 && echo base > /srv/log \\
 && echo old > /srv/cache/a && echo old > /srv/remade/old && echo x > /srv/gone/deep/f \\
 && echo k > /srv/keep/k && chown -R 1000:1000 /srv
WORKDIR /srv
ENV EF_X=1
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c"]
"""
SCRIPT = """set -e
echo more >> log
head -c 300000 /dev/urandom > cache/state
chmod 600 cache/state
rm -rf gone cache/a
rm -rf remade && mkdir remade && echo new > remade/new
mkdir -p fresh/sub && echo f > fresh/sub/f && ln -s ../log fresh/link && ln fresh/sub/f hard
chmod 700 keep
"""


def files_of(client: Any, container_id: str) -> dict[str, tuple[Any, ...]]:
    """path -> (type, mode, uid, gid, symlink target, sha256); a hard link as its target's."""
    data = b"".join(client.api.export(container_id))
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        for m in members:
            name = m.name.removeprefix("./").rstrip("/")
            if not name or name.split("/")[0] in NOT_STATE or name in NOT_STATE:
                continue
            kind = tarfile.REGTYPE if m.islnk() else m.type
            handle = tar.extractfile(m) if (m.isreg() or m.islnk()) else None
            sha = hashlib.sha256(handle.read()).hexdigest() if handle else ""
            link = m.linkname if m.issym() else ""
            out[name] = (kind, m.mode, m.uid, m.gid, link, sha)
    return out


@pytest.fixture
def client() -> Iterator[Any]:
    yield from engine_client(PREFIX, REPO)


def test_the_exported_diff_loads_as_the_container_it_came_from(client: Any,
                                                               tmp_path: Path) -> None:
    base_tag = busybox_base(lambda *_: None).tag
    base, _ = client.images.build(fileobj=io.BytesIO(DOCKERFILE.format(base=base_tag).encode()),
                                  tag=f"{REPO}/app:base", rm=True)
    source = client.containers.run(base.id, [SCRIPT], name=f"{PREFIX}svc", detach=True)
    assert source.wait(timeout=60)["StatusCode"] == 0, source.logs()
    expected = files_of(client, source.id)
    assert expected["srv/remade/new"][5] and "srv/remade/old" not in expected
    assert "srv/gone" not in expected and "srv/cache/a" not in expected

    sent: dict[bytes, tuple[str, str, int]] = {}

    def node(namespace: str) -> NodeCore:  # two agents on one engine, two registry accounts
        engine = DockerEngine(RegistryAccess(REGISTRY, "u", "p", Path("/nonexistent"),
                                             namespace=namespace))
        return NodeCore(engine, NodeStore.open(tmp_path / f"{namespace}.sqlite3"),
                        NodeOptions(tmp_path / namespace, container_prefix=PREFIX), gpu=NO_GPU,
                        transfer_lookup=lambda sid: sent[sid])

    src, core = node("src"), node("dst")
    ref = pb.MigrationRef(migration_id="m1", epoch=1)
    parts = list(src.export_diff(pb.ExportDiffRequest(ref=ref, name="svc")))
    chunks = [p.chunk.data for p in parts[:-1]]
    out = parts[-1].result
    assert all(p.WhichOneof("part") == "chunk" for p in parts[:-1])
    layer = b"".join(chunks)
    assert out.digest == f"sha256:{hashlib.sha256(layer).hexdigest()}"
    assert out.size_bytes == len(layer) == out.timing.bytes_moved
    assert 300_000 < out.size_bytes < 400_000  # the diff, not the image
    # the image id (what RASP step 10 carries) is the config's digest; the config's top layer
    # is the streamed one
    assert out.image_id == f"sha256:{hashlib.sha256(out.config).hexdigest()}"
    assert json.loads(out.config)["rootfs"]["diff_ids"][-1] == out.digest

    def stream(body: list[bytes], epoch: int = 1) -> Iterator[pb.ImportDiffRequest]:
        yield pb.ImportDiffRequest(header=pb.ImportDiffHeader(
            ref=pb.MigrationRef(migration_id="m1", epoch=epoch), repository=f"{REPO}/app"))
        for c in body:
            yield pb.ImportDiffRequest(chunk=pb.DiffChunk(data=c))

    def load(kept: pb.ImportDiffResponse, epoch: int = 1, mid: str = "m1",
             config: bytes = out.config) -> pb.LoadDiffResponse:
        return core.load_diff(pb.LoadDiffRequest(
            ref=pb.MigrationRef(migration_id=mid, epoch=epoch), image_ref=kept.image_ref,
            expected_digest=out.image_id, config=config, base_image_id=out.base_image_id,
            rasp_session_id=b"s1"))

    # one byte changed on the way: kept, but it is not the layer of the image step 10 names
    target = f"{REGISTRY}/dst/{REPO}/app:m1-2"  # the destination's push namespace
    sent[b"s1"] = (target, out.image_id, out.size_bytes)
    bad = [chunks[0][:-1] + bytes([chunks[0][-1] ^ 1]), *chunks[1:]]
    kept = core.import_diff(stream(bad, epoch=2))
    assert kept.image_ref == target
    assert kept.digest != out.digest and kept.size_bytes == out.size_bytes
    assert (tmp_path / "dst" / "diffs" / "m1.2.tar").stat().st_mode & 0o777 == 0o600
    with pytest.raises(DigestMismatch):
        load(kept, epoch=2)
    kept = core.import_diff(stream(chunks, epoch=3))
    assert kept.digest == out.digest
    # RASP step 10 carried another image: refused before anything is loaded
    sent[b"s1"] = (target, "sha256:" + "0" * 64, out.size_bytes)
    with pytest.raises(DigestMismatch):
        load(kept, epoch=3)
    sent[b"s1"] = (target, out.image_id, out.size_bytes)
    # a config changed on the way (another entrypoint) is not the image step 10 names
    changed = json.loads(out.config)
    changed["config"]["Entrypoint"] = ["/bin/sh", "-c", "echo injected"]
    with pytest.raises(DigestMismatch):
        load(kept, epoch=3, config=json.dumps(changed).encode())
    with pytest.raises(NotFound):  # nothing was received for this attempt
        load(kept, epoch=1, mid="m9")
    assert not any(f"{REPO}/app:m1-" in t for i in client.images.list() for t in i.tags)

    loaded = load(kept, epoch=3)
    assert loaded.verified and loaded.digest == out.image_id == loaded.image_id
    assert not (tmp_path / "dst" / "diffs" / "m1.3.tar").exists()  # dropped once loaded
    image = client.images.get(loaded.pinned_ref)
    assert image.id == loaded.image_id
    assert image.attrs["RootFS"]["Layers"] == [*base.attrs["RootFS"]["Layers"], out.digest]
    fresh = client.containers.create(loaded.pinned_ref, ["true"], name=f"{PREFIX}dest")
    assert files_of(client, fresh.id) == expected
    plain = source.commit(repository=f"{REPO}/plain", tag="1")
    for field in CONFIG_FIELDS:
        if field != "Labels":
            assert image.attrs["Config"].get(field) == plain.attrs["Config"].get(field), field
    assert image.attrs["Config"]["Labels"]["org.edgeferry.migration"] == "m1"


# A service that changes its files once more when it is stopped: after the early listing.
SERVE = """set -e
echo more >> log
head -c 200000 /dev/urandom > cache/state
mkdir -p fresh && echo f > fresh/f && echo doomed > doomed && echo x > remade/extra
on_term() {
  echo last >> log
  head -c 1000 /dev/urandom > cache/late
  echo late > fresh/late
  %s
  exit 0
}
trap on_term TERM
touch ready
while :; do sleep 0.05; done
"""


def _serving(client: Any, script: str, name: str, secret: Path) -> Any:
    """The service, with a file bind-mounted at /run/secrets/key as the agents mount secrets
    (the engine makes the mount point: /run and /run/secrets become changed directories)."""
    base_tag = busybox_base(lambda *_: None).tag
    base, _ = client.images.build(fileobj=io.BytesIO(DOCKERFILE.format(base=base_tag).encode()),
                                  tag=f"{REPO}/app:base", rm=True)
    secret.write_bytes(b"not state")
    source = client.containers.run(
        base.id, [script], name=f"{PREFIX}{name}", detach=True,
        mounts=[docker.types.Mount("/run/secrets/key", str(secret), type="bind",
                                   read_only=True)])
    for _ in range(200):
        if source.exec_run(["test", "-e", "/srv/ready"]).exit_code == 0:
            return source
        source.reload()
        assert source.status == "running", source.logs()
        time.sleep(0.05)
    raise AssertionError("the service never became ready")


def _node(tmp_path: Path, namespace: str) -> NodeCore:
    engine = DockerEngine(RegistryAccess(REGISTRY, "u", "p", Path("/nonexistent"),
                                         namespace=namespace))
    return NodeCore(engine, NodeStore.open(tmp_path / f"{namespace}.sqlite3"),
                    NodeOptions(tmp_path / namespace, container_prefix=PREFIX), gpu=NO_GPU)


def test_changes_listed_before_the_stop_lead_the_export_and_the_later_ones_follow(
        client: Any, tmp_path: Path) -> None:
    # on SIGTERM: files added, a path listed early deleted, a file made a directory
    source = _serving(client, SERVE % "rm doomed && rm log && mkdir log && echo z > log/z",
                      "early", tmp_path / "key")
    src = _node(tmp_path, "src")
    ref = pb.MigrationRef(migration_id="m2", epoch=1)
    stopped = src.stop(pb.StopContainerRequest(ref=ref, name="early", timeout_seconds=10,
                                               list_changes=True))
    assert stopped.exit_code == 0 and "changed paths listed before it" in stopped.timing.detail
    expected = files_of(client, source.id)
    # what the service wrote on SIGTERM, after the early listing, is in the container
    assert expected["srv/cache/late"][5] and expected["srv/fresh/late"][5]
    assert expected["srv/log/z"][5] and "srv/doomed" not in expected

    parts = list(src.export_diff(pb.ExportDiffRequest(ref=ref, name="early")))
    out = parts[-1].result
    layer = b"".join(p.chunk.data for p in parts[:-1])
    assert out.digest == f"sha256:{hashlib.sha256(layer).hexdigest()}"
    assert "before that listing" in out.timing.detail, out.timing.detail
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        names = [m.name.rstrip("/") for m in tar.getmembers()]
    assert len(names) == len(set(names)), names  # no path twice
    assert {"srv/cache/late", "srv/fresh/late", "srv/log/z"} <= set(names)
    assert "srv/doomed" not in names  # listed early, gone by the stop: never fetched
    # the secret and the directories changed only by its mount point stay out, as in a commit
    assert not [n for n in names if n == "run" or n.startswith("run/")], names
    assert "run/secrets/key" in expected  # the mount point, in the source's own export
    del expected["run/secrets/key"]

    dst = _node(tmp_path, "dst")
    target = f"{REGISTRY}/dst/{REPO}/app:m2-1"
    dst.transfer_lookup = lambda sid: (target, out.image_id, out.size_bytes)

    def stream() -> Iterator[pb.ImportDiffRequest]:
        yield pb.ImportDiffRequest(header=pb.ImportDiffHeader(ref=ref, repository=f"{REPO}/app"))
        for p in parts[:-1]:
            yield pb.ImportDiffRequest(chunk=p.chunk)

    kept = dst.import_diff(stream())
    loaded = dst.load_diff(pb.LoadDiffRequest(
        ref=ref, image_ref=kept.image_ref, expected_digest=out.image_id, config=out.config,
        base_image_id=out.base_image_id, rasp_session_id=b"s2"))
    fresh = client.containers.create(loaded.pinned_ref, ["true"], name=f"{PREFIX}dest2")
    assert files_of(client, fresh.id) == expected
