"""Placement (seed 000 Algorithm 2) in experiments: the requirement's validation, the SMF's
placement record read back (fixtures written by hand from agents/smf/migration.py's format),
the expected-outcome check, the report row and the one-requirement-per-name rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.security.rasp import Resources
from edgeferry.errors import ConfigError
from edgeferry.experiments.ecosystem import SERVICE_NEEDS, check_requirement
from edgeferry.experiments.placement import check, outcome_of, parse_placement, table_row
from edgeferry.experiments.schema import load_experiment, parse_experiment
from edgeferry.experiments.workloads import PlacementExpectation

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]
# what the SMF records (hand-written): a 2 GiB service, the jetson edge2 at 1.5 GiB FREE
JSON_DETAIL = json.dumps({
    "chosen": "edge3", "reason": "chose edge3 (edge2: memory_bytes 2147483648 > 1610612736)",
    "refused": [{"cloud": "edge2", "shortfall": {"memory_bytes": [2147483648, 1610612736]}}]})
LINE_DETAIL = ("chose edge3 (edge2: memory_bytes 2147483648 > 1610612736, "
               "cpu_millicores 750 > 500)")
REFUSAL = ("svc-1: no cloud fits (edge2: memory_bytes 4294967296 > 1610612736; "
           "edge3: memory_bytes 4294967296 > 3221225472)")


def doc(workload: dict[str, object]) -> dict[str, object]:
    return {"name": "p", "description": "d", "target": {"lab": {}},
            "parts": [{"name": "a", "scenario": "placement", "workload": workload}]}


def test_the_shipped_experiment_validates() -> None:
    exp = load_experiment(ROOT / "experiments" / "placement.yaml")
    assert [p.name for p in exp.parts] == ["large", "small"]
    assert exp.parts[0].workload["requirement"]["memory_mib"] == 2048


@pytest.mark.parametrize(("workload", "message"), [
    ({"requirement": {"memory_mib": 0}}, "workload.requirement.memory_mib"),
    ({"requirement": {"memory": 2048}}, "unknown key 'memory'"),
    ({"requirement": {"cpu": -5}}, "workload.requirement.cpu"),
    ({"expect": {"refused": {"edge2": ["ram"]}}}, "workload.expect.refused.edge2.0"),
    ({"expect": {"chosen": ["edge3"], "refused": {"edge3": ["memory"]}}},
     "edge3 both chosen and refused"),
    ({"source": "edge1", "expect": {"chosen": ["edge1"]}}, "the source edge1 is never chosen"),
    ({"service": "Bad Name"}, "workload.service"),
])
def test_bad_requirements_are_refused_with_the_key(workload: dict[str, object],
                                                    message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_experiment(doc(workload), "x.yaml")
    assert message in str(err.value)


def test_container_migration_takes_a_requirement_too() -> None:
    good = {"name": "c", "description": "d", "target": {"lab": {}}, "parts": [
        {"scenario": "container-migration", "parameters": {"image_size_mb": 8},
         "workload": {"requirement": {"memory_mib": 512}}}]}
    parse_experiment(good, "c.yaml")
    good["parts"][0]["workload"] = {"requirement": {"memory_mib": -1}}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"workload\.requirement\.memory_mib"):
        parse_experiment(good, "c.yaml")


def test_default_requirement_is_service_needs() -> None:
    exp = parse_experiment(doc({}), "x.yaml")
    from edgeferry.experiments.workloads import PlacementWorkload
    w = PlacementWorkload.model_validate(exp.parts[0].workload)
    assert w.requirement.resources() == SERVICE_NEEDS == Resources(100, 256, 1000, 10)


def test_json_detail_parses_and_says_why() -> None:
    out = parse_placement(JSON_DETAIL)
    assert out.chosen == "edge3"
    assert [(r.cloud, r.shortfall) for r in out.refused] == [
        ("edge2", {"memory_bytes": (2 * 1024 * MIB, 1536 * MIB)})]
    assert out.refused[0].why() == "memory 2048 MiB > free 1536 MiB"


def test_older_reason_line_and_refusal_parse() -> None:
    line = parse_placement(LINE_DETAIL)
    assert line.chosen == "edge3"
    assert line.refused[0].shortfall == {"memory_bytes": (2147483648, 1610612736),
                                         "cpu_millicores": (750, 500)}
    none = parse_placement(REFUSAL[REFUSAL.index("no cloud fits"):])
    assert none.chosen is None and [r.cloud for r in none.refused] == ["edge2", "edge3"]
    assert parse_placement("chose edge3 (no fresh advertisement)").refused == ()
    with pytest.raises(ValueError):
        parse_placement("permit (decision 1 ms)")


def test_recorded_phases_as_phases_of_makes_them() -> None:
    recorded = [{"phase": "advertisements", "detail": {}},
                {"phase": "placement", "detail": {"smf_phase": "placement",
                                                  **json.loads(JSON_DETAIL)}}]
    out = outcome_of(recorded)
    assert out is not None and out.chosen == "edge3" and out.refused[0].cloud == "edge2"
    assert outcome_of([{"phase": "audit", "detail": {}}]) is None


def test_expectation_check() -> None:
    out = parse_placement(JSON_DETAIL)
    ok = PlacementExpectation(chosen=["edge3"], refused={"edge2": ["memory"]})
    assert check(out, ok) == []
    assert check(out, None) == []
    wrong_host = check(out, PlacementExpectation(chosen=["edge2", "edge4"]))
    assert wrong_host == ["chose edge3, expected one of edge2, edge4"]
    wrong_why = check(out, PlacementExpectation(refused={"edge2": ["cpu"]}))
    assert wrong_why == ["edge2 refused for memory 2048 MiB > free 1536 MiB, not for cpu"]
    assert check(out, PlacementExpectation(refused={"edge3": ["memory"]})) == [
        "expected edge3 refused, it was not (it was chosen)"]
    assert check(out, PlacementExpectation(none_fits=True)) == [
        "expected no cloud to fit, the SMF chose edge3"]
    none = parse_placement("no cloud fits (edge2: memory_bytes 9 > 1)")
    assert check(none, PlacementExpectation()) == ["expected a placement, no cloud fits"]
    # clouds are mapped to hosts before comparing
    named = parse_placement(json.dumps({"chosen": "node-c", "refused": [
        {"cloud": "node-b", "shortfall": {"memory_bytes": [2, 1]}}]}))
    hosts = {"node-b": "edge2", "node-c": "edge3"}
    assert check(named, ok, hosts) == []


def test_report_row() -> None:
    out = parse_placement(JSON_DETAIL)
    trial = {"trial_id": "large-0001", "detail": {
        "service": "placement-large", "source": "edge1",
        "requirement": {"cpu": 250, "memory_mib": 2048},
        "placement": out.to_dict({"edge2": "edge2", "edge3": "edge3"}),
        "expectation_problems": []}}
    assert table_row(trial) == ["large-0001", "placement-large", "cpu 250 m, memory 2048 MiB",
                                "edge1", "edge3", "edge2: memory 2048 MiB > free 1536 MiB",
                                "yes"]
    assert table_row({"trial_id": "x", "detail": {}}) is None


def test_a_name_maps_to_one_requirement() -> None:
    check_requirement("placement-large", Resources(250, 2048, 1000, 10),
                      Resources(250, 2048, 1000, 10), {"placement-large": None})
    with pytest.raises(ConfigError) as err:
        check_requirement("placement-large", Resources(250, 2048, 1000, 10),
                          Resources(250, 1024, 1000, 10),
                          {"placement-large": None, "placement-small": None})
    text = str(err.value)
    assert "memory 2048 MiB" in text and "memory 1024 MiB" in text
    assert "placement-small" in text
