"""The lab host image variants: what "prebaked" adds is what the roles install on every host."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeferry.lab.config import load_spec
from edgeferry.lab.image import ImageRecipe, configure_rootfs

ROLES = Path(__file__).parents[3] / "roles"


def _role_packages(role: str, var: str) -> set[str]:
    data = yaml.safe_load((ROLES / role / "vars" / "Debian.yml").read_text())
    return set(data[var])


def test_prebaked_holds_exactly_the_every_host_packages_of_the_roles():
    every_host = _role_packages("base", "__base_packages") | _role_packages(
        "docker_engine", "__docker_engine_packages"
    )
    minimal = set(ImageRecipe.for_variant("minimal").packages)
    prebaked = set(ImageRecipe.for_variant("prebaked").packages)
    registry_only = _role_packages("registry", "__registry_packages")
    assert every_host | registry_only <= prebaked
    # nothing baked in that no role installs
    assert prebaked - minimal <= every_host | registry_only
    assert "docker.io" in prebaked - minimal


def test_prebaked_registry_services_are_installed_but_enabled_nowhere(tmp_path: Path):
    """The registry host's services come in the image (its first deploy installs nothing), but
    no edge may run them: the image leaves them disabled, and the registry role enables them on
    the registry host alone."""
    recipe = ImageRecipe.for_variant("prebaked")
    registry_vars = yaml.safe_load((ROLES / "registry" / "vars" / "Debian.yml").read_text())
    services = {registry_vars["__registry_service"] + ".service",
                registry_vars["__registry_proxy_service"] + ".service"}
    assert services <= set(recipe.disabled)
    assert ImageRecipe.for_variant("minimal").disabled == ()
    # a root filesystem as the packages leave it: each service wanted by multi-user.target
    root = tmp_path / "rootfs"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    for unit in (*services, "ssh.service"):
        (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")
    (root / "etc/ssh").mkdir()
    (root / "root").mkdir()
    configure_rootfs(root, recipe)
    left = sorted(p.name for p in wants.iterdir())
    assert left == ["edgeferry-ssh-hostkeys.service", "ssh.service"]


def test_variants_are_different_images_and_the_default_lab_is_prebaked():
    assert (
        ImageRecipe.for_variant("minimal").tag != ImageRecipe.for_variant("prebaked").tag
    )
    assert load_spec().host_image == "prebaked"
    with pytest.raises(ValueError, match="prebaked or minimal"):
        ImageRecipe.for_variant("huge")
