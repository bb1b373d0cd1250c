"""The node agent pulls the variant of its workload platform: an image index is resolved to the
platform's entry, pulled by that entry's digest with ``platform=``, and the digests reported.
The Docker client and the registry are stand-ins that record what they are asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.common.platforms import Descriptor, image_index, parse_platform
from agents.node.domain import DigestMismatch, ImageRef, PhaseFailed
from agents.node.engine import DockerEngine, RegistryAccess

V2 = "application/vnd.docker.distribution.manifest.v2+json"
IDX = "sha256:" + "9" * 64
AMD = "sha256:" + "a" * 64
ARM = "sha256:" + "b" * 64
LAYER = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100,
         "digest": "sha256:" + "c" * 64}
INDEX = image_index([Descriptor(V2, AMD, 400, parse_platform("linux/amd64")),
                     Descriptor(V2, ARM, 401, parse_platform("linux/arm64"))])


def _registry(served: dict[str, tuple[str, dict[str, Any]]]) -> RegistryAccess:
    """A registry answering manifest GETs from ``served`` (reference -> digest, document)."""

    class StubRegistry(RegistryAccess):
        def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
            return served[reference]

    return StubRegistry("10.0.0.1:5000", "u", "p", Path("/x"))


class FakeImage:
    def __init__(self, ref: str) -> None:
        self.id = "sha256:" + "d" * 64
        self.attrs = {"RepoDigests": [ref]}
        self.tags: list[tuple[str, str]] = []

    def tag(self, name: str, tag: str) -> None:
        self.tags.append((name, tag))


class FakeClient:
    def __init__(self) -> None:
        self.pulls: list[tuple[str, dict[str, Any]]] = []
        self.api = self
        self.images = self
        self.pulled = ""

    def pull(self, ref: str, **kw: Any) -> list[dict[str, Any]]:
        self.pulls.append((ref, kw))
        self.pulled = ref
        return [{"status": "Pull complete", "id": "cccccccccccc"}]

    def get(self, ref: str) -> FakeImage:
        assert ref == self.pulled
        return FakeImage(ref)

    def info(self) -> dict[str, Any]:
        return {"Architecture": "x86_64"}


SERVED = {"v1": (IDX, INDEX), IDX: (IDX, INDEX),
          AMD: (AMD, {"schemaVersion": 2, "mediaType": V2, "layers": [LAYER]}),
          ARM: (ARM, {"schemaVersion": 2, "mediaType": V2, "layers": [LAYER]})}
REF = ImageRef.parse("10.0.0.1:5000/edge1/nms:v1")


def test_a_jetson_engine_pulls_the_arm64_entry_by_digest() -> None:
    client = FakeClient()
    engine = DockerEngine(_registry(SERVED), interface="lo", client=client,
                          platform=parse_platform("linux/arm64"))
    out = engine.pull(REF, IDX)
    assert client.pulls == [(f"10.0.0.1:5000/edge1/nms@{ARM}",
                             {"auth_config": {"username": "u", "password": "p",
                                              "serveraddress": "10.0.0.1:5000"},
                              "stream": True, "decode": True, "platform": "linux/arm64"})]
    assert out.values["verified"] is True
    assert out.values["index_digest"] == IDX and out.values["platform_digest"] == ARM
    assert out.values["platform"] == "linux/arm64"


def test_an_unconfigured_engine_uses_its_own_architecture() -> None:
    client = FakeClient()
    engine = DockerEngine(_registry(SERVED), interface="lo", client=client)
    assert str(engine.platform) == "linux/amd64"
    out = engine.pull(REF, "")
    assert client.pulls[0][0].endswith(f"@{AMD}") and "platform" not in client.pulls[0][1]
    assert out.values["verified"] is False  # no expected digest given: nothing to verify


def test_a_single_platform_image_is_pulled_as_before() -> None:
    client = FakeClient()
    engine = DockerEngine(_registry(SERVED), interface="lo", client=client,
                          platform=parse_platform("linux/arm64"))
    out = engine.pull(REF, ARM)
    assert client.pulls[0][0].endswith(f"@{ARM}") and out.values["index_digest"] == ""


def test_an_index_without_the_platform_and_a_lying_registry_are_refused() -> None:
    engine = DockerEngine(_registry(SERVED), interface="lo", client=FakeClient(),
                          platform=parse_platform("linux/riscv64"))
    with pytest.raises(PhaseFailed, match="no variant for linux/riscv64"):
        engine.pull(REF, IDX)
    lying = dict(SERVED)
    lying[ARM] = (AMD, SERVED[AMD][1])
    engine = DockerEngine(_registry(lying), interface="lo", client=FakeClient(),
                          platform=parse_platform("linux/arm64"))
    with pytest.raises(DigestMismatch):
        engine.pull(REF, IDX)


class CommittedElsewhere(FakeClient):
    """The pulled (committed) image was built for amd64 and names ``base`` as its base."""

    def __init__(self, base: str | None) -> None:
        super().__init__()
        self.base = base

    def get(self, ref: str) -> FakeImage:
        image = FakeImage(ref)
        labels = {"org.edgeferry.base-image": self.base} if self.base else {}
        image.attrs.update({"Architecture": "amd64", "Os": "linux",
                            "Config": {"Labels": labels}})
        return image


COMMITTED = "sha256:" + "e" * 64
SERVED_COMMIT = {**SERVED, COMMITTED: (COMMITTED, {"schemaVersion": 2, "mediaType": V2,
                                                   "layers": [LAYER, LAYER]})}
MIG = ImageRef.parse("10.0.0.1:5000/edge1/svc:mig-1")


def test_an_amd64_commit_arriving_on_arm64_is_rebased_onto_the_index_arm64_entry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_rebase(client: Any, committed: str, **kw: str) -> dict[str, Any]:
        calls.append({"committed": committed, **kw})
        return {"image_id": "sha256:" + "f" * 64, "diff_content_digest": "sha256:x"}

    monkeypatch.setattr("agents.node.engine.rebase_image", fake_rebase)
    client = CommittedElsewhere("10.0.0.1:5000/edgeferry/nms:v1")
    engine = DockerEngine(_registry(SERVED_COMMIT), interface="lo", client=client,
                          platform=parse_platform("linux/arm64"))
    out = engine.pull(MIG, COMMITTED)
    base = "10.0.0.1:5000/edgeferry/nms"
    assert calls == [{"committed": f"10.0.0.1:5000/edge1/svc@{COMMITTED}",
                      "source_base": f"{base}@{AMD}", "dest_base": f"{base}@{ARM}",
                      "target": "10.0.0.1:5000/edge1/svc:mig-1-arm64",
                      "platform": "linux/arm64"}]
    # both base variants pulled by digest (the amd64 one's layers are the commit's own)
    assert [r for r, _ in client.pulls[1:]] == [f"{base}@{AMD}", f"{base}@{ARM}"]
    assert out.values["pinned_ref"] == "10.0.0.1:5000/edge1/svc:mig-1-arm64"
    assert out.values["rebased_from"] == f"10.0.0.1:5000/edge1/svc@{COMMITTED}"


def test_a_foreign_commit_without_a_multiarch_base_is_refused() -> None:
    for base, message in ((None, "names no base image"),
                          (f"10.0.0.1:5000/edgeferry/nms@{AMD}", "single-platform")):
        engine = DockerEngine(_registry(SERVED_COMMIT), interface="lo",
                              client=CommittedElsewhere(base),
                              platform=parse_platform("linux/arm64"))
        with pytest.raises(PhaseFailed, match=message):
            engine.pull(MIG, COMMITTED)
