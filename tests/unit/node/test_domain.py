"""Node agent domain rules: resources, Algorithm 3, image refs, layer accounting, fencing."""

from __future__ import annotations

import pytest

from agents.node.domain import (
    Fenced,
    ImageRef,
    InvalidRequest,
    Neighbour,
    PhaseFailed,
    Resources,
    check_epoch,
    choose_neighbour,
    layer_statuses,
    moved_bytes,
    must_forward,
    pull_transfers,
    push_transfers,
)

TOTAL = Resources(cpu_millicores=4000, memory_bytes=8_000, storage_bytes=100, network_bps=10)


def test_free_is_max_minus_alloc_clamped_at_zero() -> None:
    alloc = Resources(cpu_millicores=5000, memory_bytes=3_000)
    free = TOTAL.minus(alloc)
    assert free == Resources(0, 5_000, 100, 10, 0)
    assert free.any_positive()
    assert not Resources().any_positive()


def test_algorithm3_forwards_when_request_reaches_remaining() -> None:
    used = Resources(cpu_millicores=3000)
    # R_rem cpu = 1000: REQ 999 stays, REQ 1000 (>=) moves.
    assert not must_forward(Resources(cpu_millicores=999), TOTAL, used)
    assert must_forward(Resources(cpu_millicores=1000), TOTAL, used)
    assert must_forward(Resources(memory_bytes=8_000), TOTAL, Resources())


def test_algorithm3_ignores_dimensions_the_request_does_not_use() -> None:
    # No GPU on the host and none requested: not a reason to forward.
    assert not must_forward(Resources(cpu_millicores=1), TOTAL, Resources())
    assert must_forward(Resources(gpu=1), TOTAL, Resources())


def test_choose_neighbour_picks_the_nearest_that_fits() -> None:
    need = Resources(cpu_millicores=500)
    far_big = Neighbour("far", 5.0, Resources(cpu_millicores=8000))
    near_small = Neighbour("near", 1.0, Resources(cpu_millicores=500))  # 500 >= 500: no
    mid = Neighbour("mid", 2.0, Resources(cpu_millicores=501))
    assert choose_neighbour(need, [far_big, near_small, mid]) == mid
    assert choose_neighbour(need, [near_small]) is None
    assert choose_neighbour(need, []) is None


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("127.0.0.1:5000/migr/nms:m1-2", "127.0.0.1:5000", "migr/nms", "m1-2", ""),
        ("edgeferry/synthetic:50mb-1l-abc", "", "edgeferry/synthetic", "50mb-1l-abc", ""),
        ("localhost/x@sha256:" + "a" * 64, "localhost", "x", "", "sha256:" + "a" * 64),
        ("reg.lab:443/a/b", "reg.lab:443", "a/b", "", ""),
    ],
)
def test_image_ref_parse_roundtrip(text: str, registry: str, repo: str, tag: str,
                                   digest: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("bad", ["Upper/Case:x", "r:5000/a@sha256:xyz", "a:b c", ""])
def test_image_ref_rejects_malformed(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        ImageRef.parse(bad)


DIFF_IDS = ["sha256:" + c * 64 for c in "abc"]
MANIFEST = [{"digest": "sha256:" + c * 64, "size": s} for c, s in zip("def", (10, 20, 30),
                                                                          strict=True)]


def test_push_counts_only_layers_the_engine_uploaded() -> None:
    events = [
        {"status": "Preparing", "id": "a" * 12},
        {"status": "Mounted from efnode/base", "id": "a" * 12},
        {"status": "Layer already exists", "id": "b" * 12},
        {"status": "Pushing", "id": "c" * 12, "progressDetail": {"current": 5}},
        {"status": "Pushed", "id": "c" * 12},
        {"aux": {"Digest": "sha256:" + "9" * 64}},
    ]
    layers = push_transfers(DIFF_IDS, MANIFEST, layer_statuses(events))
    assert [x.transferred for x in layers] == [False, False, True]
    assert moved_bytes(layers) == 30


def test_push_refuses_a_manifest_that_does_not_match_the_image() -> None:
    with pytest.raises(PhaseFailed):
        push_transfers(DIFF_IDS[:2], MANIFEST, {})


def test_pull_counts_downloaded_layers_and_skips_present_ones() -> None:
    events = [
        {"status": "Already exists", "id": "d" * 12},
        {"status": "Already exists", "id": "e" * 12},
        {"status": "Pulling fs layer", "id": "f" * 12},
        {"status": "Downloading", "id": "f" * 12},
        {"status": "Pull complete", "id": "f" * 12},
    ]
    layers = pull_transfers(MANIFEST, layer_statuses(events))
    assert [x.transferred for x in layers] == [False, False, True]
    assert moved_bytes(layers) == 30


def test_epoch_fence() -> None:
    assert check_epoch("m", 1, None) == 1
    assert check_epoch("m", 3, 2) == 3
    assert check_epoch("m", 2, 2) == 2
    with pytest.raises(Fenced):
        check_epoch("m", 1, 2)
    with pytest.raises(InvalidRequest):
        check_epoch("m", 0, None)
