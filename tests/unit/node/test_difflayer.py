"""The direct order's layer from a change list (agents/node/difflayer.py), against layers worked
out by hand from the Docker image spec's whiteout rules, and `LayerWriter`'s tar read back."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from agents.node.difflayer import (
    ADDED,
    DELETED,
    MODIFIED,
    BadChanges,
    ChunkReader,
    Fetch,
    LayerPlan,
    LayerWriter,
    plan_layer,
    remaining_after,
    without_mounts,
)


def ch(path: str, kind: int) -> dict[str, object]:
    return {"Path": path, "Kind": kind}


def test_new_directories_are_fetched_whole_modified_ones_as_their_entry_alone() -> None:
    plan = plan_layer([ch("/srv", MODIFIED), ch("/srv/log", MODIFIED), ch("/srv/new", ADDED),
                       ch("/srv/new/a", ADDED), ch("/srv/new/b/c", ADDED),
                       ch("/etc", MODIFIED), ch("/etc/motd", MODIFIED)], {})
    assert plan.fetches == (Fetch("/etc", header_only=True), Fetch("/etc/motd", if_file=True),
                            Fetch("/srv", header_only=True), Fetch("/srv/log", if_file=True),
                            Fetch("/srv/new", recursive=True))
    assert plan.whiteouts == ()


def test_a_deleted_path_is_a_whiteout_beside_it_and_a_deleted_tree_one_whiteout() -> None:
    plan = plan_layer([ch("/srv", MODIFIED), ch("/srv/old", DELETED), ch("/var", MODIFIED),
                       ch("/var/cache", DELETED), ch("/var/cache/x", DELETED),
                       ch("/top", DELETED)], {"/srv/old": False, "/var/cache": False})
    assert plan.fetches == (Fetch("/srv", header_only=True), Fetch("/var", header_only=True))
    assert plan.whiteouts == (".wh.top", "srv/.wh.old", "var/.wh.cache")


def test_a_directory_deleted_and_made_again_is_opaque() -> None:
    # overlay reports a re-made directory deleted and its new entries added
    plan = plan_layer([ch("/data", MODIFIED), ch("/data/seg", DELETED),
                       ch("/data/seg/1", ADDED), ch("/data/seg/gone", DELETED),
                       ch("/data/empty", DELETED)], {"/data/seg": True, "/data/empty": True,
                                                     "/data/seg/gone": False})
    assert plan.fetches == (Fetch("/data", header_only=True),
                            Fetch("/data/empty", recursive=True, opaque=True),
                            Fetch("/data/seg", recursive=True, opaque=True))
    assert plan.whiteouts == ()  # the opaque markers hide the image's old entries


@pytest.mark.parametrize("changes", [
    [ch("/a/../etc/passwd", ADDED)], [ch("relative", ADDED)], [ch("/", MODIFIED)],
    [ch("/a", ADDED), ch("/a", DELETED)], [ch("/a", 7)],
])
def test_a_change_list_that_is_not_a_layer_is_refused(changes: list[dict[str, object]]) -> None:
    with pytest.raises(BadChanges):
        plan_layer(changes, {})


def _archive(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.uid = len(body), 1000
                tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_the_writer_reroots_archives_adds_markers_and_hashes_what_it_wrote() -> None:
    out = io.BytesIO()
    writer = LayerWriter(out, max_bytes=1 << 20)
    seg = _archive([("seg", None), ("seg/1", b"x" * 3000)])
    writer.add_fetched(Fetch("/data/seg", recursive=True, opaque=True),
                       ChunkReader(seg[i:i + 700] for i in range(0, len(seg), 700)))
    writer.add_fetched(Fetch("/log", if_file=True), io.BytesIO(_archive([("log", b"l")])))
    writer.add_fetched(Fetch("/srv", header_only=True),
                       io.BytesIO(_archive([("srv", None), ("srv/not-read", b"n")])), True)
    writer.add_whiteouts(["srv/.wh.old"])
    digest, size = writer.close()
    raw = out.getvalue()
    assert (digest, size) == (f"sha256:{hashlib.sha256(raw).hexdigest()}", len(raw))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = [(m.name, m.type, m.uid) for m in tar.getmembers()]
        assert tar.extractfile("data/seg/1").read() == b"x" * 3000  # type: ignore[union-attr]
    assert members == [("data/seg", tarfile.DIRTYPE, 0), ("data/seg/.wh..wh..opq",
                                                          tarfile.REGTYPE, 0),
                       ("data/seg/1", tarfile.REGTYPE, 1000), ("log", tarfile.REGTYPE, 1000),
                       ("srv", tarfile.DIRTYPE, 0), ("srv/.wh.old", tarfile.REGTYPE, 0)]


def test_the_writer_refuses_more_than_its_bound_and_entries_outside_the_path() -> None:
    for bound, entries in ((4096, [("big", b"y" * 8192)]), (1 << 20, [("../../etc/x", b"z")])):
        out = io.BytesIO()
        writer = LayerWriter(out, max_bytes=bound)
        with pytest.raises(BadChanges):
            writer.add_fetched(Fetch("/a/big", recursive=True), io.BytesIO(_archive(entries)))
        writer.discard()
        assert b"y" * 4096 not in out.getvalue() and b"etc/x" not in out.getvalue()


def test_fetches_made_early_are_not_made_again_and_the_rest_follow_in_plan_order() -> None:
    plan = LayerPlan((Fetch("/srv", header_only=True), Fetch("/srv/log", if_file=True),
                      Fetch("/srv/new", recursive=True), Fetch("/var/x", if_file=True)), ())
    early = [Fetch("/srv/new", recursive=True), Fetch("/srv", header_only=True)]
    assert remaining_after(early, plan) == (Fetch("/srv/log", if_file=True),
                                            Fetch("/var/x", if_file=True))
    # a modified path listed with no changes under it early, with some later (or the other
    # way round): the same entries either way, written from the stopped container
    assert remaining_after([Fetch("/srv", if_file=True), Fetch("/srv/log", header_only=True)],
                           plan) == (Fetch("/srv/new", recursive=True),
                                     Fetch("/var/x", if_file=True))
    assert remaining_after([], plan) == plan.fetches


@pytest.mark.parametrize("early", [
    Fetch("/srv/new"),                              # whole subtree wanted, entry alone written
    Fetch("/srv", recursive=True),                  # subtree written, entry alone wanted
    Fetch("/srv/new", recursive=True, opaque=True),  # marker written, none wanted
    Fetch("/srv/elsewhere", recursive=True),        # not in the layer at all
])
def test_an_early_fetch_the_second_listing_does_not_want_is_refused(early: Fetch) -> None:
    plan = LayerPlan((Fetch("/srv", header_only=True), Fetch("/srv/new", recursive=True)), ())
    with pytest.raises(BadChanges, match="changed between the listing before the stop"):
        remaining_after([early], plan)


def test_mounts_and_the_directories_changed_only_by_their_mount_points_are_left_out() -> None:
    changes = [ch("/run", MODIFIED), ch("/run/secrets", MODIFIED),
               ch("/run/secrets/key", ADDED), ch("/run/secrets/crt", ADDED),
               ch("/srv", MODIFIED), ch("/srv/data", ADDED), ch("/srv/data/x", ADDED),
               ch("/srv/state", ADDED),
               ch("/etc", MODIFIED),                     # chmod'ed: nothing under it
               ch("/var", MODIFIED), ch("/var/run", MODIFIED), ch("/var/run/app.pid", ADDED)]
    kept = [c["Path"] for c in without_mounts(changes, ["/run/secrets/key", "/run/secrets/crt",
                                                        "/srv/data"])]
    # /run and /run/secrets hold nothing but mount points; /srv holds a real change beside
    # its volume; /etc changed itself; /var/run holds a real file
    assert kept == ["/srv", "/srv/state", "/etc", "/var", "/var/run", "/var/run/app.pid"]
    assert [c["Path"] for c in without_mounts(changes, [])] == [c["Path"] for c in changes]
