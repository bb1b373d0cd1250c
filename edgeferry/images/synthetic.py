"""Synthetic workload images for migration sweeps (BloSM Table 3 sizes: 264 MB, 2.13 GB, 4.4 GB).

    built = synthetic_image(SyntheticRecipe(total_bytes=50 * MB, layers=2))
    docker run -d -e EF_STATE_DIFF_BYTES=1048576 -p 8080 built.tag

The image is ``edgeferry/busybox-base`` + ``layers`` layers of ``/dev/urandom`` bytes (together
``total_bytes``, so compressed size ~= raw size) + the entrypoint of
`agents.workloads.synthetic`. The state diff is written by the container at run time (size from
``EF_STATE_DIFF_BYTES``, default `SyntheticRecipe.state_diff_bytes`). Random bytes differ between
builds, so the tag carries the recipe hash and an existing tag is never rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.platforms import Platform
from agents.workloads.synthetic import DEFAULT_PORT, ENTRYPOINT_SH
from edgeferry.errors import ConfigError
from edgeferry.images.common import (
    IMAGE_NAMESPACE,
    BuiltImage,
    Log,
    build_from_context,
    cached,
    recipe_hash,
)

SYNTHETIC_REPO = f"{IMAGE_NAMESPACE}/synthetic"
MB = 1_000_000
MiB = 1 << 20
MAX_TOTAL_BYTES = 16 * 1000 * MB


@dataclass(frozen=True)
class SyntheticRecipe:
    """Size and shape of a synthetic workload image."""

    total_bytes: int = 50 * MB
    layers: int = 1
    state_diff_bytes: int = 1 * MiB
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not 0 <= self.total_bytes <= MAX_TOTAL_BYTES:
            raise ConfigError(f"total_bytes must be 0..{MAX_TOTAL_BYTES}, not {self.total_bytes}")
        if not 1 <= self.layers <= 64:
            raise ConfigError(f"layers must be 1..64, not {self.layers}")
        if self.state_diff_bytes < 0:
            raise ConfigError("state_diff_bytes must be >= 0")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be 1..65535, not {self.port}")

    def layer_sizes(self) -> list[int]:
        """Bytes per random layer (the remainder goes to the last layer)."""
        each, rest = divmod(self.total_bytes, self.layers)
        return [each] * (self.layers - 1) + [each + rest]

    def label(self) -> str:
        return f"{round(self.total_bytes / MB)}mb-{self.layers}l"

    def dockerfile(self, base_tag: str) -> str:
        lines = [f"FROM {base_tag}"]
        for i, size in enumerate(self.layer_sizes()):
            lines.append(
                f"RUN mkdir -p /data && head -c {size} /dev/urandom > /data/layer-{i:02d}"
            )
        lines += [
            "COPY entrypoint.sh /entrypoint.sh",
            f"ENV EF_PORT={self.port} EF_STATE_DIFF_BYTES={self.state_diff_bytes}",
            f"EXPOSE {self.port}",
            "STOPSIGNAL SIGTERM",
            'ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]',
        ]
        return "\n".join(lines) + "\n"

    def tag_for(self, base_tag: str) -> str:
        h = recipe_hash("synthetic", base_tag, self.dockerfile(base_tag), ENTRYPOINT_SH)
        return f"{SYNTHETIC_REPO}:{self.label()}-{h}"


def synthetic_image(recipe: SyntheticRecipe, log: Log = print,
                    platform: Platform | str | None = None) -> BuiltImage:
    """Build (once) the synthetic image for ``recipe`` on the local engine, for ``platform``
    (default: the controller's; ``linux/arm64`` builds on the arm64 busybox base)."""
    from edgeferry.images.multiarch import busybox_base_for, is_native, platform_of

    target = platform_of(platform)
    base = busybox_base_for(target, log)
    tag = recipe.tag_for(base.tag) + ("" if is_native(target) else f"-{target.architecture}")
    hit = cached(tag)
    if hit is not None:
        return hit
    log(f"building {tag}: {recipe.total_bytes / MB:.0f} MB of random bytes in "
        f"{recipe.layers} layer(s)")
    files = {
        "Dockerfile": (0o644, recipe.dockerfile(base.tag).encode()),
        "entrypoint.sh": (0o755, ENTRYPOINT_SH.encode()),
    }
    return build_from_context(tag, files, recipe=tag, log=log,
                              platform=None if is_native(target) else str(target))
