"""The lab host image variants: what "prebaked" adds is what the roles install on every host."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeferry.lab.config import load_spec
from edgeferry.lab.image import ImageRecipe

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
    assert every_host <= prebaked
    assert prebaked - minimal <= every_host  # nothing baked in that no role installs everywhere
    assert "docker.io" in prebaked - minimal
    registry_only = _role_packages("registry", "__registry_packages")
    assert not (registry_only & prebaked), "control-only packages must not run on every edge"


def test_variants_are_different_images_and_the_default_lab_is_prebaked():
    assert (
        ImageRecipe.for_variant("minimal").tag != ImageRecipe.for_variant("prebaked").tag
    )
    assert load_spec().host_image == "prebaked"
    with pytest.raises(ValueError, match="prebaked or minimal"):
        ImageRecipe.for_variant("huge")
