"""Synthetic image recipes (pure: no Docker)."""

from __future__ import annotations

import pytest

from edgeferry.errors import ConfigError
from edgeferry.images.synthetic import MB, SyntheticRecipe


def test_layers_add_up_to_the_total() -> None:
    r = SyntheticRecipe(total_bytes=264 * MB + 1, layers=4)
    sizes = r.layer_sizes()
    assert len(sizes) == 4 and sum(sizes) == 264 * MB + 1


def test_dockerfile_writes_random_layers_and_handles_sigterm() -> None:
    text = SyntheticRecipe(total_bytes=10, layers=2, state_diff_bytes=7).dockerfile("base:1")
    assert text.startswith("FROM base:1\n")
    assert text.count("/dev/urandom") == 2
    assert "EF_STATE_DIFF_BYTES=7" in text and "STOPSIGNAL SIGTERM" in text


def test_tag_changes_with_the_recipe_and_is_stable() -> None:
    a = SyntheticRecipe(total_bytes=50 * MB)
    assert a.tag_for("b:1") == SyntheticRecipe(total_bytes=50 * MB).tag_for("b:1")
    assert a.tag_for("b:1") != SyntheticRecipe(total_bytes=51 * MB).tag_for("b:1")
    assert a.tag_for("b:1") != a.tag_for("b:2")
    assert a.tag_for("b:1").startswith("edgeferry/synthetic:50mb-1l-")


@pytest.mark.parametrize("kw", [{"total_bytes": -1}, {"layers": 0}, {"port": 0},
                                {"state_diff_bytes": -5}])
def test_bad_recipes_are_refused(kw: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        SyntheticRecipe(**kw)
