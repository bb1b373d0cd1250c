"""OCI platforms and image indexes: parsing, index construction and platform selection.

Expectations are written out by hand from the OCI image-index specification (field names,
schemaVersion 2, the arm64 -> v8 default variant) and from the shape of a real multi-platform
manifest list (Debian's official image lists amd64, arm/v5, arm/v7, arm64/v8, 386, mips64le,
ppc64le, s390x; BuildKit adds attestation manifests with platform unknown/unknown).
"""

from __future__ import annotations

import json

import pytest

from agents.common.platforms import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Descriptor,
    Platform,
    PlatformError,
    image_index,
    index_bytes,
    is_index,
    native_platform,
    parse_platform,
    select,
)

V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_M = "application/vnd.oci.image.manifest.v1+json"


def _d(ch: str) -> str:
    return "sha256:" + ch * 64


def test_platform_strings() -> None:
    assert parse_platform("linux/arm64") == Platform("linux", "arm64", "")
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert str(parse_platform("Linux/AMD64")) == "linux/amd64"
    for bad in ("arm64", "linux/", "linux/arm64/v8/x", "linux/arm 64", ""):
        with pytest.raises(PlatformError):
            parse_platform(bad)


def test_machine_names_map_to_oci_architectures() -> None:
    assert native_platform("x86_64") == Platform("linux", "amd64")
    assert native_platform("aarch64") == Platform("linux", "arm64")
    with pytest.raises(PlatformError, match="riscv64"):
        native_platform("riscv64")


def test_arm64_implies_v8_but_nothing_else_matches() -> None:
    arm64 = parse_platform("linux/arm64")
    assert arm64.matches(parse_platform("linux/arm64/v8"))
    assert not arm64.matches(parse_platform("linux/arm/v7"))
    assert not arm64.matches(parse_platform("linux/amd64"))
    assert not parse_platform("linux/arm64/v9").matches(arm64)


def test_the_index_we_write_is_the_oci_document() -> None:
    index = image_index([
        Descriptor(V2, _d("b"), 528, parse_platform("linux/arm64")),
        Descriptor(V2, _d("a"), 529, parse_platform("linux/amd64")),
    ])
    assert index == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": V2, "digest": _d("a"), "size": 529,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": V2, "digest": _d("b"), "size": 528,
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }
    raw = index_bytes(index)
    assert json.loads(raw) == index
    assert raw.startswith(b'{"manifests":[{"digest":"sha256:aaaa') and b" " not in raw


@pytest.mark.parametrize("entries, message", [
    ([], "at least one"),
    ([Descriptor(V2, _d("a"), 1, parse_platform("linux/arm64")),
      Descriptor(OCI_M, _d("b"), 1, parse_platform("linux/arm64/v8"))], "two index entries"),
    ([Descriptor(OCI_INDEX, _d("a"), 1, parse_platform("linux/amd64"))], "image manifest"),
    ([Descriptor(V2, "sha256:abc", 1, parse_platform("linux/amd64"))], "malformed"),
    ([Descriptor(V2, _d("a"), 0, parse_platform("linux/amd64"))], "malformed"),
])
def test_bad_indexes_are_refused(entries: list[Descriptor], message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        image_index(entries)


# A real-world shaped manifest list (platforms of Debian's official image, plus attestations).
REAL_LIST = {
    "schemaVersion": 2,
    "mediaType": DOCKER_MANIFEST_LIST,
    "manifests": [
        {"mediaType": V2, "size": 529, "digest": _d("1"),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": V2, "size": 529, "digest": _d("2"),
         "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}},
        {"mediaType": V2, "size": 529, "digest": _d("3"),
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": V2, "size": 529, "digest": _d("4"),
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": V2, "size": 529, "digest": _d("5"),
         "platform": {"architecture": "386", "os": "linux"}},
        {"mediaType": OCI_M, "size": 840, "digest": _d("6"),
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        {"mediaType": OCI_M, "size": 566, "digest": _d("7")},
    ],
}


def test_selection_from_a_real_manifest_list() -> None:
    assert is_index(REAL_LIST)
    assert not is_index({"schemaVersion": 2, "mediaType": V2, "layers": []})
    assert select(REAL_LIST, parse_platform("linux/arm64")).digest == _d("4")
    assert select(REAL_LIST, parse_platform("linux/amd64")).digest == _d("1")
    assert select(REAL_LIST, parse_platform("linux/arm/v7")).digest == _d("3")
    with pytest.raises(PlatformError, match=r"linux/riscv64.*linux/amd64, linux/arm/v5"):
        select(REAL_LIST, parse_platform("linux/riscv64"))


def test_selection_from_our_own_index_round_trips() -> None:
    ours = image_index([Descriptor(V2, _d("e"), 10, parse_platform("linux/amd64")),
                        Descriptor(V2, _d("f"), 11, parse_platform("linux/arm64"))])
    assert is_index(ours)
    assert select(ours, parse_platform("linux/arm64/v8")).digest == _d("f")
    assert select(ours, native_platform("x86_64")).size == 10
