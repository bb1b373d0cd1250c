"""The node agent pulls the variant of its workload platform: an image index is resolved to the
platform's entry, pulled by that entry's digest with ``platform=``, and the digests reported. A
committed image of another platform crosses the network as its diff only: manifest, config and
diff blobs from the registry API, each checked against its digest (the tar against its diff_id),
loaded onto this platform's variant of its base index.

The Docker client is a stand-in that records what it is asked; the registry is the real
`RegistryAccess` whose HTTP transport (`_get`) answers from memory, every document and blob
content-addressed with its real sha256 here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agents.common.platforms import Descriptor, image_index, parse_platform
from agents.node.domain import DigestMismatch, ImageRef, PhaseFailed
from agents.node.engine import DockerEngine, RegistryAccess

V2 = "application/vnd.docker.distribution.manifest.v2+json"
GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True).encode()


def sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def layer_tar(name: str, body: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


class Store:
    """Blobs and manifests by digest, as a registry stores them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, dict[str, Any]]] = {}

    def blob(self, body: bytes) -> str:
        self.blobs[sha(body)] = body
        return sha(body)

    def manifest(self, doc: dict[str, Any], *tags: str) -> str:
        digest = sha(canonical(doc))
        for ref in (digest, *tags):
            self.manifests[ref] = (digest, doc)
        return digest

    def image(self, config: dict[str, Any], layers: list[bytes], *tags: str) -> str:
        """A single-platform image of gzipped ``layers`` (tars); its manifest digest."""
        descs = [{"mediaType": GZ, "size": len(gz), "digest": self.blob(gz)}
                 for gz in (gzip.compress(t, mtime=0) for t in layers)]
        cfg = canonical(config)
        return self.manifest({"schemaVersion": 2, "mediaType": V2, "layers": descs,
                              "config": {"digest": self.blob(cfg), "size": len(cfg)}}, *tags)


class _Response:
    def __init__(self, body: bytes, digest: str) -> None:
        self.body, self.headers = io.BytesIO(body), {"Docker-Content-Digest": digest}

    def read(self, n: int = -1) -> bytes:
        return self.body.read(n)

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class MemoryRegistry(RegistryAccess):
    """`RegistryAccess` with its HTTP GETs answered from a `Store` (``served`` may override
    what a reference answers, to play a lying registry)."""

    def __init__(self, store: Store, served: dict[str, tuple[str, dict[str, Any]]] | None = None,
                 blobs: dict[str, bytes] | None = None) -> None:
        super().__init__("10.0.0.1:5000", "u", "p", Path("/x"))
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "served", served or {})
        object.__setattr__(self, "bad_blobs", blobs or {})

    def _get(self, path: str, accept: str = "") -> Any:
        kind, ref = path.split("/")[-2:]
        if kind == "blobs":
            return _Response(self.bad_blobs.get(ref, self.store.blobs[ref]), ref)  # type: ignore[attr-defined]
        digest, doc = self.served.get(ref) or self.store.manifests[ref]  # type: ignore[attr-defined]
        return _Response(canonical(doc), digest)


def config(arch: str, diff_ids: list[str], base: str = "") -> dict[str, Any]:
    return {"architecture": arch, "os": "linux", "created": "2026-11-27T00:00:00Z",
            "config": {"Labels": {"org.edgeferry.base-image": base} if base else {}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}


BASE_AMD_TAR, BASE_ARM_TAR = layer_tar("bin/x", b"amd64 base"), layer_tar("bin/x", b"arm64 base")
DIFF_TAR = layer_tar("state/blocks", b"the service's state")
STORE = Store()
AMD = STORE.image(config("amd64", [sha(BASE_AMD_TAR)]), [BASE_AMD_TAR])
ARM = STORE.image(config("arm64", [sha(BASE_ARM_TAR)]), [BASE_ARM_TAR])
INDEX = image_index([Descriptor(V2, AMD, 400, parse_platform("linux/amd64")),
                     Descriptor(V2, ARM, 401, parse_platform("linux/arm64"))])
IDX = STORE.manifest(INDEX, "v1")
BASE_REF = "10.0.0.1:5000/edgeferry/nms"
# an amd64 commit of a workload started from the index: the amd64 base + one diff layer
COMMITTED = STORE.image(config("amd64", [sha(BASE_AMD_TAR), sha(DIFF_TAR)], f"{BASE_REF}:v1"),
                        [BASE_AMD_TAR, DIFF_TAR])
REF = ImageRef.parse("10.0.0.1:5000/edge1/nms:v1")
MIG = ImageRef.parse("10.0.0.1:5000/edge1/svc:mig-1")
AUTH = {"username": "u", "password": "p", "serveraddress": "10.0.0.1:5000"}


class FakeImage:
    def __init__(self, ref: str, attrs: dict[str, Any] | None = None) -> None:
        self.id = "sha256:" + "d" * 64
        self.attrs = {"RepoDigests": [ref], **(attrs or {})}
        self.tags: list[tuple[str, str]] = []

    def tag(self, name: str, tag: str) -> None:
        self.tags.append((name, tag))


class FakeClient:
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        self.pulls: list[tuple[str, dict[str, Any]]] = []
        self.api = self
        self.images = self
        self.pulled = ""
        self.attrs = attrs

    def pull(self, ref: str, **kw: Any) -> list[dict[str, Any]]:
        self.pulls.append((ref, kw))
        self.pulled = ref
        return [{"status": "Already exists", "id": "cccccccccccc"}]

    def get(self, ref: str) -> FakeImage:
        assert ref == self.pulled
        return FakeImage(ref, self.attrs)

    def info(self) -> dict[str, Any]:
        return {"Architecture": "x86_64"}


def arm64_engine(registry: RegistryAccess, client: FakeClient | None = None) -> DockerEngine:
    return DockerEngine(registry, interface="lo", client=client or FakeClient(),
                        platform=parse_platform("linux/arm64"))


def test_a_jetson_engine_pulls_the_arm64_entry_by_digest() -> None:
    client = FakeClient()
    out = arm64_engine(MemoryRegistry(STORE), client).pull(REF, IDX)
    assert client.pulls == [(f"10.0.0.1:5000/edge1/nms@{ARM}",
                             {"auth_config": AUTH, "stream": True, "decode": True,
                              "platform": "linux/arm64"})]
    assert out.values["verified"] is True
    assert out.values["index_digest"] == IDX and out.values["platform_digest"] == ARM
    assert out.values["platform"] == "linux/arm64"


def test_an_unconfigured_engine_uses_its_own_architecture() -> None:
    client = FakeClient()
    engine = DockerEngine(MemoryRegistry(STORE), interface="lo", client=client)
    assert str(engine.platform) == "linux/amd64"
    out = engine.pull(REF, "")
    assert client.pulls[0][0].endswith(f"@{AMD}") and "platform" not in client.pulls[0][1]
    assert out.values["verified"] is False  # no expected digest given: nothing to verify


def test_a_single_platform_image_of_its_own_platform_is_pulled_as_before() -> None:
    client = FakeClient()
    out = arm64_engine(MemoryRegistry(STORE), client).pull(REF, ARM)
    assert client.pulls[0][0].endswith(f"@{ARM}") and out.values["index_digest"] == ""
    assert "rebased_from" not in out.values


class CountingRegistry(MemoryRegistry):
    """A `MemoryRegistry` that records the path of each GET."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        object.__setattr__(self, "paths", [])

    def _get(self, path: str, accept: str = "") -> Any:
        self.paths.append(path)  # type: ignore[attr-defined]
        return super()._get(path, accept)


def test_a_pull_after_the_stop_reads_the_manifest_once_before_the_engine_pulls() -> None:
    """The pull during a migration's downtime: one GET of the manifest (hashed against the
    digest asked for, and reused for the platform check) and one of its config blob."""
    reg, client = CountingRegistry(STORE), FakeClient()
    arm64_engine(reg, client).pull(REF, ARM)
    config_digest = STORE.manifests[ARM][1]["config"]["digest"]
    assert reg.paths == [f"edge1/nms/manifests/{ARM}",  # type: ignore[attr-defined]
                         f"edge1/nms/blobs/{config_digest}"]
    assert len(client.pulls) == 1


def test_an_index_without_the_platform_and_a_lying_registry_are_refused() -> None:
    engine = DockerEngine(MemoryRegistry(STORE), interface="lo", client=FakeClient(),
                          platform=parse_platform("linux/riscv64"))
    with pytest.raises(PhaseFailed, match="no variant for linux/riscv64"):
        engine.pull(REF, IDX)
    lying = MemoryRegistry(STORE, served={ARM: STORE.manifests[AMD]})
    with pytest.raises(DigestMismatch):
        arm64_engine(lying).pull(REF, IDX)


def _capture_rebase(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake(client: Any, committed: Any, *rest: Any, **kw: Any) -> dict[str, Any]:
        entry = {"committed": committed, **kw}
        if rest:  # rebase_layers(client, config, paths, ...): read the tars while they exist
            entry["tars"] = [Path(p).read_bytes() for p in rest[0]]
        calls.append(entry)
        return {"image_id": "sha256:" + "f" * 64, "diff_content_digest": "sha256:x"}

    monkeypatch.setattr(f"agents.node.engine.{name}", fake)
    return calls


def test_a_foreign_commit_moves_only_its_diff_onto_the_arm64_base(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _capture_rebase(monkeypatch, "rebase_layers")
    client = FakeClient()
    out = arm64_engine(MemoryRegistry(STORE), client).pull(MIG, COMMITTED)
    # the engine pulled only the arm64 base (already there: "Already exists"); neither the
    # committed image nor the amd64 base
    assert [r for r, _ in client.pulls] == [f"{BASE_REF}@{ARM}"]
    [call] = calls
    assert call["tars"] == [DIFF_TAR]  # exactly the diff layer, unpacked from its gzip blob
    assert call["committed"]["architecture"] == "amd64"
    assert (call["dest_base"], call["target"], call["platform"]) == (
        f"{BASE_REF}@{ARM}", "10.0.0.1:5000/edge1/svc:mig-1-arm64", "linux/arm64")
    diff_blob = STORE.manifests[COMMITTED][1]["layers"][1]
    assert [(x.digest, x.size, x.transferred) for x in out.values["layers"]] == [
        (STORE.manifests[ARM][1]["layers"][0]["digest"],
         STORE.manifests[ARM][1]["layers"][0]["size"], False),
        (diff_blob["digest"], diff_blob["size"], True)]
    assert out.values["diff_only"] == 1 and out.values["verified"] is True
    assert out.values["rebased_from"] == f"10.0.0.1:5000/edge1/svc@{COMMITTED}"


def test_a_tampered_diff_blob_or_a_wrong_diff_id_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _capture_rebase(monkeypatch, "rebase_layers")
    diff_digest = STORE.manifests[COMMITTED][1]["layers"][1]["digest"]
    tampered = MemoryRegistry(STORE, blobs={diff_digest: gzip.compress(b"other", mtime=0)})
    with pytest.raises(DigestMismatch, match="registry served"):
        arm64_engine(tampered).pull(MIG, COMMITTED)
    # a commit whose config names another diff_id than its blob unpacks to
    store = Store()
    store.blobs, store.manifests = dict(STORE.blobs), dict(STORE.manifests)
    liar = store.image(config("amd64", [sha(BASE_AMD_TAR), "sha256:" + "7" * 64],
                              f"{BASE_REF}:v1"), [BASE_AMD_TAR, DIFF_TAR])
    with pytest.raises(DigestMismatch, match="unpacks to"):
        arm64_engine(MemoryRegistry(store)).pull(MIG, liar)
    # and a manifest whose bytes are not the digest asked for, whether its header claims they
    # are or tells the truth
    other = (COMMITTED, STORE.manifests[AMD][1])
    with pytest.raises(DigestMismatch, match=f"claims {COMMITTED} .* hash to {AMD}"):
        arm64_engine(MemoryRegistry(STORE, served={COMMITTED: other})).pull(MIG, COMMITTED)
    with pytest.raises(DigestMismatch, match=f"another manifest for edge1/svc@{COMMITTED}"):
        arm64_engine(MemoryRegistry(STORE, served={COMMITTED: STORE.manifests[AMD]})).pull(
            MIG, COMMITTED)
    assert calls == []


def test_a_commit_not_layered_on_its_base_is_pulled_whole_and_rebased(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A flattened commit (one layer, not the base's plus a diff): the whole image is pulled
    and `rebase_image` works from the engine's copy (which refuses it if it cannot)."""
    calls = _capture_rebase(monkeypatch, "rebase_image")
    store = Store()
    store.blobs, store.manifests = dict(STORE.blobs), dict(STORE.manifests)
    flat = store.image(config("amd64", [sha(DIFF_TAR)], f"{BASE_REF}:v1"), [DIFF_TAR])
    client = FakeClient({"Architecture": "amd64", "Os": "linux",
                         "Config": {"Labels": {"org.edgeferry.base-image": f"{BASE_REF}:v1"}}})
    out = arm64_engine(MemoryRegistry(store), client).pull(MIG, flat)
    assert [r for r, _ in client.pulls] == [f"10.0.0.1:5000/edge1/svc@{flat}",
                                            f"{BASE_REF}@{AMD}", f"{BASE_REF}@{ARM}"]
    assert [(c["committed"], c["source_base"], c["dest_base"]) for c in calls] == [
        (f"10.0.0.1:5000/edge1/svc@{flat}", f"{BASE_REF}@{AMD}", f"{BASE_REF}@{ARM}")]
    assert out.values["pinned_ref"] == "10.0.0.1:5000/edge1/svc:mig-1-arm64"


def test_a_foreign_commit_without_a_multiarch_base_is_refused() -> None:
    for base, message in (("", "names no base image"),
                          (f"{BASE_REF}@{AMD}", "single-platform")):
        store = Store()
        store.blobs, store.manifests = dict(STORE.blobs), dict(STORE.manifests)
        commit = store.image(config("amd64", [sha(BASE_AMD_TAR), sha(DIFF_TAR)], base),
                             [BASE_AMD_TAR, DIFF_TAR])
        with pytest.raises(PhaseFailed, match=message):
            arm64_engine(MemoryRegistry(store)).pull(MIG, commit)


def test_an_x86_host_without_a_configured_platform_rebases_an_arm64_commit_onto_amd64(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The way back from a jetson: the x86 host's engine (no platform configured, its own
    x86_64) must not run the arm64 commit under binfmt; the diff moves onto the amd64 base."""
    calls = _capture_rebase(monkeypatch, "rebase_layers")
    back = STORE.image(config("arm64", [sha(BASE_ARM_TAR), sha(DIFF_TAR)], f"{BASE_REF}:v1"),
                       [BASE_ARM_TAR, DIFF_TAR])
    client = FakeClient()
    engine = DockerEngine(MemoryRegistry(STORE), interface="lo", client=client)
    out = engine.pull(MIG, back)
    assert [r for r, _ in client.pulls] == [f"{BASE_REF}@{AMD}"]
    [call] = calls
    assert call["tars"] == [DIFF_TAR] and call["dest_base"] == f"{BASE_REF}@{AMD}"
    assert call["target"].endswith("-amd64") and out.values["platform"] == "linux/amd64"


def test_a_prepull_takes_this_platforms_image_and_refuses_another_platforms() -> None:
    """Before the stop the SMF offers what the source runs from, first its digests: on an arm64
    destination the amd64 entry would move the wrong base (its ~50 MB again after the stop),
    so it is refused and the SMF goes on to the index, whose arm64 entry is pulled."""
    client = FakeClient()
    engine = arm64_engine(MemoryRegistry(STORE), client)
    with pytest.raises(PhaseFailed, match="built for linux/amd64, this host runs linux/arm64"):
        engine.prepull(ImageRef.parse(f"{BASE_REF}@{AMD}"))
    assert client.pulls == []
    engine.prepull(ImageRef.parse(f"{BASE_REF}:v1"))  # the index: its arm64 entry
    engine.prepull(ImageRef.parse(f"{BASE_REF}@{ARM}"))
    assert [(r, kw.get("platform")) for r, kw in client.pulls] == [
        (f"{BASE_REF}:v1", "linux/arm64"), (f"{BASE_REF}@{ARM}", "linux/arm64")]
