"""TrialLinks: the lab's LinkShaper as a trial sees it, with the runner's errors (the messages
the lab gives), and the refusals of a target that is not the emulated lab."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeferry.experiments.links import TrialLinks
from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable, TrialFailed
from edgeferry.experiments.scenarios.migration_common import trial_links


def _context(tmp_path: Path, lab: object = None) -> ScenarioContext:
    def connect(host: str) -> object:
        raise AssertionError(f"nothing may be run on {host}")

    return ScenarioContext(experiment="x", part="p", seed=0, workload={}, run_dir=tmp_path,
                           work_dir=tmp_path, lab=lab, connect=connect if lab else None)


def test_only_edges_are_shaped_and_the_trial_fails_with_the_labs_message(tmp_path):
    lab = SimpleNamespace(name="lab", hosts={
        "control": {"role": "control"},
        "edge1": {"role": "edge", "configured_bps": 40_000_000}})
    links = trial_links(_context(tmp_path, lab))
    assert isinstance(links, TrialLinks)
    with pytest.raises(TrialFailed, match=r"^'control' is not an edge host of lab 'lab'$"):
        links.ensure(["control"], "10mbit")
    with pytest.raises(TrialFailed, match="not an edge host"):
        links.configured("control")
    with pytest.raises(TrialFailed, match="not an edge host"):
        links.set("ghost", "up", 10_000_000)
    assert links.configured("edge1") == 40_000_000
    assert links.ensure(["edge1"], "40mbit")["changed"] == [] and links.restore() == []


def test_without_the_lab_a_rate_is_refused_and_no_rate_is_fine(tmp_path):
    ctx = _context(tmp_path)
    with pytest.raises(ScenarioUnavailable):
        TrialLinks(ctx)
    links = trial_links(ctx)
    assert links.ensure(["edge1"], None)["rate_bps"] is None
    with pytest.raises(TrialFailed, match="inventory target"):
        links.ensure(["edge1"], "40mbit")
