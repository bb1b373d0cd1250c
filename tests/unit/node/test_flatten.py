"""The commit-depth rule and the flattened image's archive (agents/node/flatten.py)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from pydantic import ValidationError

from agents.node.agent import NodeSettings
from agents.node.flatten import (
    DEFAULT_MAX_IMAGE_LAYERS,
    OVERLAY_MAX_LAYERS,
    check_max_layers,
    committed_layers,
    flat_image_config,
    image_archive,
    layers_after,
    must_flatten,
    read_archive,
)


def test_commit_adds_one_layer() -> None:
    assert committed_layers(0) == 1
    assert committed_layers(7) == 8
    with pytest.raises(ValueError):
        committed_layers(-1)


@pytest.mark.parametrize(("image_layers", "threshold", "flat"), [
    (1, 3, False),   # commit -> 2 layers < 3
    (2, 3, True),    # commit -> 3 layers: at the threshold
    (9, 3, True),    # an image already deeper than the threshold
    (62, 64, False),
    (63, 64, True),
    (119, 120, True),
    (1, 2, True),    # the least threshold: every commit flattens
])
def test_must_flatten_at_or_above_the_threshold(image_layers: int, threshold: int,
                                                flat: bool) -> None:
    assert must_flatten(image_layers, threshold) is flat


@pytest.mark.parametrize("bad", [0, 1, 121, 128, -5])
def test_threshold_outside_its_bounds_is_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        check_max_layers(bad)
    with pytest.raises(ValidationError):
        NodeSettings(max_image_layers=bad)


def test_setting_default_and_override() -> None:
    assert NodeSettings().max_image_layers == DEFAULT_MAX_IMAGE_LAYERS == 64
    assert NodeSettings(max_image_layers=3).max_image_layers == 3


def test_without_flattening_a_service_hits_overlays_limit_and_with_it_never_does() -> None:
    """The bug: a 5-layer service migrated 130 times would need 135 layers (> 128, the commit
    fails from migration 124 on); with the rule it never exceeds the threshold."""
    assert layers_after(5, 130, None) == 135 > OVERLAY_MAX_LAYERS
    first_failing = next(n for n in range(1, 200) if layers_after(5, n, None) > OVERLAY_MAX_LAYERS)
    assert first_failing == OVERLAY_MAX_LAYERS - 5 + 1
    for threshold in (3, 64, 120):
        seen = [layers_after(5, n, threshold) for n in range(300)]
        assert max(seen[1:]) < threshold  # after the first commit, always under it
        assert max(seen) < OVERLAY_MAX_LAYERS
    # threshold 64: commits 1..58 add a layer (6..63), commit 59 would make 64: flattened to 1
    assert [layers_after(5, n, 64) for n in (58, 59, 60)] == [63, 1, 2]


def test_flat_config_is_the_containers_config_with_the_labels_and_one_layer() -> None:
    container = {"Cmd": ["serve", "--port", "80"], "Entrypoint": ["/init"],
                 "Env": ["A=1", "B=$x y"], "WorkingDir": "/srv", "User": "1000:1000",
                 "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
                 "Labels": {"old": "1"}, "Image": "sha256:" + "e" * 64}
    out = flat_image_config(container, {"old": "1", "new": "2"}, architecture="amd64",
                            os_name="linux", diff_id="sha256:" + "d" * 64, created="T",
                            created_by="test")
    assert out["config"] == {k: v for k, v in container.items() if k != "Image"} | {
        "Labels": {"old": "1", "new": "2"}}
    assert out["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}
    assert (out["architecture"], out["os"]) == ("amd64", "linux")
    assert "variant" not in out


def test_archive_holds_the_layer_config_and_a_tagging_manifest() -> None:
    layer = bytes(range(256)) * 4099  # not a multiple of 512: exercises the padding
    config = json.dumps({"x": 1}).encode()
    stream = io.BytesIO(b"junk" + layer)
    stream.read(4)  # the archive starts from the current position
    members = read_archive(image_archive(stream, len(layer), config, "reg:5000/a/b:t"))
    assert hashlib.sha256(members["layer.tar"]).digest() == hashlib.sha256(layer).digest()
    assert members["config.json"] == config
    assert json.loads(members["manifest.json"]) == [
        {"Config": "config.json", "RepoTags": ["reg:5000/a/b:t"], "Layers": ["layer.tar"]}]


def test_archive_refuses_a_layer_shorter_than_announced() -> None:
    with pytest.raises(ValueError, match="early"):
        list(image_archive(io.BytesIO(b"abc"), 10, b"{}", "a:b"))
