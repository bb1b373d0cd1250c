"""Cross-architecture migration against the Docker engine: re-base a committed image's diff
layers onto another platform's variant of its base image (`rebase.py` holds the pure rules).

    out = rebase_image(client, "reg/svc:mig-1", source_base="reg/nms@sha256:<amd64>",
                       dest_base="reg/nms@sha256:<arm64>", target="reg/svc:mig-1-arm64")

The committed image (or only its diff blobs, from the registry: `rebase_layers`) and the
destination base are read with ``docker save``; the diff layers are copied byte for byte into a
``docker load`` archive with the destination base's layers and a config naming its platform
(`rebase.rebased_config`), so the engine hashes every layer against its diff_id on load. The
loaded image's layer chain must then be the base's diff_ids followed by the diff's (else
`RebaseFailed`): the diff whose content digest was scanned (``diff_content_digest``) is the one
in the image, byte for byte.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from agents.node.rebase import DiffScan, diff_layers, rebased_config, scan_layer


class RebaseFailed(Exception):
    """The engine did not produce the re-based image with the same diff content."""


def _save(client: Any, image: str, into: Path) -> tuple[dict[str, Any], list[Path]]:
    """``docker save`` of ``image`` unpacked into ``into``: (config, layer tar paths in order)."""
    archive = into / "image.tar"
    with archive.open("wb") as out:
        for chunk in client.images.get(image).save(named=False):
            out.write(chunk)
    _extract_plain(archive, into)
    archive.unlink()
    manifest = json.loads((into / "manifest.json").read_text())[0]
    config = json.loads((into / manifest["Config"]).read_text())
    return config, [into / layer for layer in manifest["Layers"]]


def _extract_plain(archive: Path, into: Path) -> None:
    """Unpack the files, directories and in-archive symlinks (copied) of a ``docker save``
    archive; names escaping ``into`` are refused (Python 3.11.2 on the hosts has no
    ``extractall(filter=)``)."""
    root = into.resolve()
    links: list[tuple[Path, Path]] = []
    with tarfile.open(archive) as tar:
        for member in tar:
            target = (into / member.name).resolve()
            if member.name.startswith("/") or not target.is_relative_to(root):
                raise RebaseFailed(f"docker save archive member {member.name!r} escapes")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, target.open("wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
            elif member.issym():  # a layer saved twice: ``<id>/layer.tar -> ../<id2>/...``
                source_path = (target.parent / member.linkname).resolve()
                if not source_path.is_relative_to(root):
                    raise RebaseFailed(f"docker save archive link {member.name!r} escapes")
                links.append((target, source_path))
    for target, source_path in links:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_path, target)


def _scan(paths: list[Path]) -> tuple[str, list[tuple[str, str]]]:
    """Content digest and ELF files of the diff layers taken together (in order)."""
    digests, elves = [], []
    for path in paths:
        with path.open("rb") as fh:
            scan = scan_layer(fh)
        digests.append(scan.content_digest)
        elves += scan.executables
    return ",".join(digests), elves


def scan_diff(client: Any, committed: str, source_base: str) -> tuple[str, list[tuple[str, str]]]:
    """(content digest, ELF files) of what ``committed`` adds to ``source_base``."""
    base_ids = list(client.images.get(source_base).attrs["RootFS"]["Layers"])
    with tempfile.TemporaryDirectory(prefix="ef-rebase-") as tmp:
        config, layers = _save(client, committed, Path(tmp))
        diffs = diff_layers(config["rootfs"]["diff_ids"], base_ids)
        return _scan(layers[len(layers) - len(diffs):])


def rebase_image(client: Any, committed: str, *, source_base: str, dest_base: str,
                 target: str, platform: str = "") -> dict[str, Any]:
    """Load ``target`` = ``dest_base`` + the diff layers ``committed`` adds to
    ``source_base``; refuse ELF files in the diff (`rebase.ArchitectureSpecific`, naming
    ``platform``, the destination's)."""
    base_ids = list(client.images.get(source_base).attrs["RootFS"]["Layers"])
    with tempfile.TemporaryDirectory(prefix="ef-rebase-") as tmp:
        src_dir = Path(tmp) / "src"
        src_dir.mkdir()
        committed_config, committed_layers = _save(client, committed, src_dir)
        diffs = diff_layers(committed_config["rootfs"]["diff_ids"], base_ids)
        diff_paths = committed_layers[len(committed_layers) - len(diffs):]
        return rebase_layers(client, committed_config, diff_paths, dest_base=dest_base,
                             target=target, platform=platform, source=committed)


def rebase_layers(client: Any, committed_config: dict[str, Any], diff_paths: list[Path], *,
                  dest_base: str, target: str, platform: str = "",
                  source: str = "") -> dict[str, Any]:
    """Load ``target`` = ``dest_base`` + the diff layer tars ``diff_paths`` (uncompressed, in
    order: the last entries of ``committed_config``'s diff_ids), refusing ELF files in them;
    the loaded image's layer chain must be the base's and these (`RebaseFailed`). The
    layers come from ``docker save`` of the committed image (`rebase_image`) or straight from
    the registry's blobs (`agents.node.engine`: a destination that needs only the diff)."""
    diffs = list(committed_config["rootfs"]["diff_ids"])[len(committed_config["rootfs"]
                                                             ["diff_ids"]) - len(diff_paths):]
    before, elves = _scan(diff_paths)
    DiffScan(executables=elves).refuse_executables(platform or f"{dest_base}'s platform")
    with tempfile.TemporaryDirectory(prefix="ef-rebase-") as tmp:
        dst_dir = Path(tmp) / "dst"
        dst_dir.mkdir()
        base_config, base_layers = _save(client, dest_base, dst_dir)
        config = rebased_config(committed_config, base_config, diffs,
                                created_by=f"edgeferry: re-based from {source or 'a commit'}")
        archive = Path(tmp) / "load.tar"
        names = [f"layer{i}.tar" for i in range(len(base_layers) + len(diff_paths))]
        with tarfile.open(archive, "w") as tar:
            for name, path in zip(names, [*base_layers, *diff_paths], strict=True):
                tar.add(path, arcname=name)
            for name, body in (
                ("config.json", json.dumps(config).encode()),
                ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [target],
                                               "Layers": names}]).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        with archive.open("rb") as fh:
            events = list(client.api.load_image(fh))
        for event in events:
            if "error" in event:
                raise RebaseFailed(f"docker load of {target}: {event['error']}")
    image = client.images.get(target)
    # docker load hashed every layer tar against the config's diff_ids: the loaded chain being
    # exactly base + diff means the diff scanned above is the one in the image, byte for byte
    loaded = list(image.attrs["RootFS"]["Layers"])
    if loaded != config["rootfs"]["diff_ids"] or loaded[len(loaded) - len(diffs):] != diffs:
        raise RebaseFailed(f"{target}: the engine holds layers {loaded}, not the base's and "
                           f"the diff's {config['rootfs']['diff_ids']}")
    return {"image_id": str(image.id), "diff_layers": len(diffs),
            "diff_content_digest": before, "architecture": str(image.attrs["Architecture"]),
            "variant": str(image.attrs.get("Variant") or "")}
