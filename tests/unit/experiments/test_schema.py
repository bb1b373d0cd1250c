from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeferry.errors import ConfigError
from edgeferry.experiments import registry
from edgeferry.experiments.matrix import expand
from edgeferry.experiments.runner import resolve_scenarios
from edgeferry.experiments.scenario import ScenarioUnavailable
from edgeferry.experiments.schema import load_experiment

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "experiments").glob("*.yaml"))
EXPECTED = {"quick", "nms-secure-migration", "container-migration", "request-migration",
            "ledger-decision", "audit-cases"}


def test_all_six_experiments_are_shipped():
    assert {p.stem for p in SHIPPED} >= EXPECTED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_experiment_validates(path):
    exp = load_experiment(path)
    assert exp.name == path.stem
    assert expand(exp), "an experiment with no trials"
    for part in exp.parts:
        assert part.scenario in registry.names()


def test_quick_runs_every_part_including_the_migrations():
    exp = load_experiment(ROOT / "experiments" / "quick.yaml")
    resolve_scenarios(exp)  # every enabled part is implemented
    assert all(p.enabled for p in exp.parts)
    assert {"nms-secure-migration", "container-migration"} <= {p.scenario for p in exp.parts}


@pytest.mark.parametrize("name", ["container-migration", "nms-secure-migration",
                                  "request-migration"])
def test_migration_scenarios_are_implemented(name):
    exp = load_experiment(ROOT / "experiments" / f"{name}.yaml")
    resolve_scenarios(exp)
    assert registry.availability(name) is None


def test_a_missing_implementation_fails_early_naming_what_it_needs():
    spec = registry.spec_of("request-migration")
    registry.register(registry.ScenarioSpec(
        name="teleport-missing", summary="s",
        implementation="edgeferry.experiments.scenarios.teleport:Teleport",
        params=spec.params, workload=spec.workload, phases=spec.phases, needs="a teleporter"))
    with pytest.raises(ScenarioUnavailable) as err:
        registry.load_scenario("teleport-missing")
    assert "scenario 'teleport-missing' is not implemented yet" in str(err.value)
    assert "needs a teleporter" in str(err.value)


def write(tmp_path: Path, doc: dict, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


BASE = {"name": "x", "description": "d", "target": {"lab": {}}, "scenario": "container-migration",
        "parameters": {"image_size_mb": [264]}}


@pytest.mark.parametrize("change, expected", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"target": {"lab": {"bandwith": "40mbit"}}}, "target.lab: unknown key 'bandwith'"),
    ({"parameters": {"imgsize": [1], "image_size_mb": [1]}}, "parameters: unknown key 'imgsize'"),
    ({"workload": {"sauce": "edge1"}}, "workload: unknown key 'sauce'"),
    ({"phases": ["stop", "nap"]}, "phases.1: container-migration has no phase 'nap'"),
    ({"scenario": "teleport"}, "scenario: unknown scenario 'teleport'"),
    ({"parameters": {"image_size_mb": ["big"]}}, "parameters.image_size_mb:"),
    ({"parameters": {}}, "parameters: container-migration needs image_size_mb"),
    ({"target": {"lab": {}, "inventory": "inv"}}, "exactly one of 'lab'"),
    ({"references": [{"label": "l", "value": 1, "unit": "parsecs", "source": "s",
                      "phase": "total"}]}, "unit 'parsecs'"),
    ({"references": [{"label": "l", "value": 1, "unit": "s", "source": "s", "phase": "total",
                      "where": {"image_size_mb": 999}}]}, "999 is not among the swept values"),
])
def test_bad_definitions_name_file_and_key(tmp_path, change, expected):
    path = write(tmp_path, {**BASE, **change})
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_composite_parts_errors_name_the_part(tmp_path):
    doc = {"name": "x", "description": "d", "target": {"lab": {}},
           "parts": [{"scenario": "audit-cases", "parameters": {"target": "any", "oops": 1}}]}
    with pytest.raises(ConfigError, match=r"parts\.0\.parameters: unknown key 'oops'"):
        load_experiment(write(tmp_path, doc))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)
