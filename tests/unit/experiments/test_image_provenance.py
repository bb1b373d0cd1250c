"""A published multi-architecture image lands in run.json's provenance: index digest and the
digest of each platform's image, per part, beside what else provenance holds."""

from __future__ import annotations

from pathlib import Path

from edgeferry.experiments.provenance import IMAGES, record_images
from edgeferry.experiments.results import RunDir
from edgeferry.images.index_push import PublishedIndex

AMD = "sha256:" + "a" * 64
ARM = "sha256:" + "b" * 64
IDX = "sha256:" + "c" * 64


def test_the_index_and_each_platform_digest_are_recorded_per_part(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "exp")
    rd.write_info({"provenance": {"git": "abc"}})
    published = PublishedIndex("10.0.0.10:5000/edgeferry/nms:multi-1", IDX,
                               {"linux/arm64": ARM, "linux/amd64": AMD})
    record_images(rd.path, "x86-to-jetson", published.provenance())
    record_images(rd.path, "other", {"reference": "r", "index_digest": IDX, "platforms": {}})
    prov = RunDir.open(rd.path).read_info()["provenance"]
    assert prov["git"] == "abc"
    assert prov[IMAGES]["x86-to-jetson"] == {
        "reference": "10.0.0.10:5000/edgeferry/nms:multi-1", "index_digest": IDX,
        "platforms": {"linux/amd64": AMD, "linux/arm64": ARM}}
    assert set(prov[IMAGES]) == {"x86-to-jetson", "other"}
