"""Data-audit policy model and decisions (seed 002): validation, element checks."""

from __future__ import annotations

import pytest

from agents.audit.domain import (
    ACCESS,
    CONTAINER_ELEMENTS,
    LIVENESS,
    EdgeState,
    PolicyError,
    evaluate,
    parse_container_policy,
    parse_edge,
    parse_requirement,
    percent_limit,
)
from agents.audit.tables import seed002_tables

UP = EdgeState(cpu_percent=40, memory_percent=30, alive=True, measured_at=1000.0)


@pytest.fixture(scope="module")
def paper():
    return seed002_tables()


def _row(decision, element):
    (row,) = [c for c in decision.checks if c.element == element]
    return row


# --- Tables 5-6 verification (section 5.1, Figure 19) -------------------------------------

@pytest.mark.parametrize(("edge", "failed", "required", "actual"), [
    ("Edge2", "cDAl", "jp,us,fr", "de"),
    ("Edge4", "cDAo", "-caB", "caB"),
    ("Edge6", "cDAl", "jp,us,fr", "kr"),
])
def test_paper_denials_name_the_failing_element_and_values(paper, edge, failed, required, actual):
    d = evaluate(paper.containers["App1"], paper.edges[edge], paper.states[edge])
    assert not d.permit
    assert [c.element for c in d.failures] == [failed]
    row = _row(d, failed)
    assert (row.required, row.actual, row.held, row.constrained) == (required, actual, False, True)
    assert d.reasons() == [f"{failed}: {row.note}"]


@pytest.mark.parametrize("edge", ["Edge3", "Edge5", "Edge7", "Edge8"])
def test_paper_permits(paper, edge):
    d = evaluate(paper.containers["App1"], paper.edges[edge], paper.states[edge])
    assert d.permit, d.reasons()
    assert d.failures == ()
    # every element is listed, in Table 1 order, after the access and liveness rows
    assert [c.element for c in d.checks] == [ACCESS, LIVENESS, *CONTAINER_ELEMENTS]
    assert _row(d, "cHRcu").note == "40% <= 60"
    assert _row(d, "cHRmu").note == "30% <= 50"
    assert _row(d, "cHRc").note == "2.6 GHz >= 1.6 GHz"
    assert _row(d, "cHRm").note == "8 GB >= 4 GB"
    assert not _row(d, "cHRgpu").constrained


# --- access, liveness, monitoring ----------------------------------------------------------

def test_dead_edge_is_denied(paper):
    app = paper.containers["App1"]
    down = EdgeState(cpu_percent=0, memory_percent=0, alive=False, measured_at=0)
    d = evaluate(app, paper.edges["Edge3"], down)
    assert not d.permit and [c.element for c in d.failures] == [LIVENESS]


def test_utilisation_needs_a_fresh_measurement(paper):
    app = paper.containers["App1"]
    edge = paper.edges["Edge3"]
    d = evaluate(app, edge, None)
    assert [c.element for c in d.failures] == ["cHRcu", "cHRmu"]
    assert _row(d, "cHRcu").actual == "(not measured)"
    d = evaluate(app, edge, UP, now=UP.measured_at + 1201, max_state_age=1200)
    assert [c.element for c in d.failures] == ["cHRcu", "cHRmu"]
    assert "stale" in _row(d, "cHRmu").note
    assert evaluate(app, edge, UP, now=UP.measured_at + 600, max_state_age=1200).permit
    busy = EdgeState(cpu_percent=61, memory_percent=50, alive=True, measured_at=0)
    d = evaluate(app, edge, busy)
    assert [c.element for c in d.failures] == ["cHRcu"]
    assert _row(d, "cHRcu").note == "61% > 60" and _row(d, "cHRmu").held  # 50 <= 50
    unconstrained = parse_container_policy("free", {})
    assert evaluate(unconstrained, edge, None).permit


# --- the paper's Table 3 / Table 4 example (section 3.2.3) ---------------------------------

def test_table3_table4_example_denies_on_country_only():
    container = parse_container_policy("c", {
        "cDAl": "jp", "cDAo": "camA", "cHRh": "devA", "cHRt": "lxc", "cHRcu": 40, "cHRmu": 40,
        "cHRc": 2.2, "cHRm": 2, "cHRgpu": "-", "cHRac": "-", "cHRaf": "-"})
    edge = parse_edge("e", {"eDAl": "us", "eDAo": "camA", "eHRh": "devA", "eHRt": "lxc",
                            "eHRc": 2.6, "eHRm": 8, "eHRgpu": "-", "eHRac": "-", "eHRaf": "-"})
    d = evaluate(container, edge, EdgeState(10, 20, True, 0))
    assert not d.permit
    assert [c.element for c in d.failures] == ["cDAl"]
    assert container.constrained() == ("cDAl", "cDAo", "cHRh", "cHRt", "cHRcu", "cHRmu",
                                       "cHRc", "cHRm")


# --- element semantics ---------------------------------------------------------------------

def _edge(**attrs):
    base = {"eDAl": "fr", "eDAo": "orgA", "eHRh": "nvidia", "eHRt": "lxc,docker",
            "eHRc": 2.2, "eHRm": 32, "eHRgpu": "yes", "eHRac": "dla,pva", "eHRaf": "TensorRT,onnx"}
    base.update(attrs)
    return parse_edge("x", base)


@pytest.mark.parametrize(("reqs", "permit"), [
    ({"cDAl": "eu"}, True),
    ({"cDAl": "eu,-fr"}, False),
    ({"cDAl": "-de"}, True),
    ({"cDAl": "FR"}, True),
    ({"cDAo": "ORGA"}, True),            # names compare case-insensitively
    ({"cHRt": "docker"}, True),          # any of the edge's tools
    ({"cHRt": "podman,lxc"}, True),
    ({"cHRt": "podman"}, False),
    ({"cHRt": "-docker"}, False),
    ({"cHRac": "dla,pva"}, True),        # all of the required accessories
    ({"cHRac": "dla,tpu"}, False),
    ({"cHRac": "-pva"}, False),
    ({"cHRaf": ["tensorrt"]}, True),     # YAML lists are accepted
    ({"cHRgpu": "yes"}, True),
    ({"cHRgpu": True}, True),
    ({"cHRgpu": "no"}, True),            # "no" = AI support not required
    ({"cHRc": "2.2GHz"}, True),
    ({"cHRc": 2.3}, False),
    ({"cHRm": "32"}, True),
    ({"cHRm": 33}, False),
])
def test_element_semantics(reqs, permit):
    d = evaluate(parse_container_policy("c", reqs), _edge(), UP)
    assert d.permit is permit, d.reasons()


def test_undeclared_edge_attribute_fails_closed():
    edge = parse_edge("bare", {"eDAl": "jp"})
    assert not evaluate(parse_container_policy("c", {"cDAo": "-caB"}), edge, UP).permit
    assert not evaluate(parse_container_policy("c", {"cHRgpu": "yes"}), edge, UP).permit
    assert not evaluate(parse_container_policy("c", {"cHRm": 1}), edge, UP).permit
    assert evaluate(parse_container_policy("c", {"cDAl": "jp"}), edge, UP).permit
    none = parse_edge("none", {"eHRac": "-", "eHRgpu": "-"})
    assert evaluate(parse_container_policy("c", {"cHRac": "-dla"}), none, UP).permit
    assert not evaluate(parse_container_policy("c", {"cHRac": "dla"}), none, UP).permit
    assert not evaluate(parse_container_policy("c", {"cHRgpu": "yes"}), none, UP).permit


def test_canonical_text_round_trips(paper):
    for policy in paper.containers.values():
        again = parse_container_policy(policy.name, policy.canonical(), location=policy.location)
        assert again.canonical() == policy.canonical()
    for edge in paper.edges.values():
        again = parse_edge(edge.name, edge.canonical(), region=edge.region)
        assert again.sets == edge.sets and again.numbers == edge.numbers and again.gpu == edge.gpu


# --- validation on entry ------------------------------------------------------------------

@pytest.mark.parametrize(("element", "value", "message"), [
    ("cDAx", "jp", "unknown container requirement"),
    ("eDAl", "jp", "that is an edge attribute"),
    ("cDAl", "uk", "unknown country code 'uk'"),
    ("cDAl", "jpn", "unknown country code"),
    ("cDAl", "jp,*", "cannot be combined"),
    ("cDAl", "jp,-", "'-' must be followed"),
    ("cDAo", "caA,-caA", "both allowed and excluded"),
    ("cDAl", "fr,-eu", "excludes everything it allows"),
    ("cHRcu", "sixty", "is not a number"),
    ("cHRcu", 101, "between 0 and 100"),
    ("cHRc", "nan", "is not a number"),
    ("cHRc", "1e999", "finite number"),
    ("cHRc", -1, "finite number >= 0"),
    ("cHRc", "2.4GB", "is not a number (GHz"),
    ("cHRm", True, "is not a number"),
    ("cHRgpu", "maybe", "is not yes/no"),
    ("cHRh", "bad;name", "is not a valid name"),
])
def test_invalid_requirements_are_rejected_with_a_clear_message(element, value, message):
    with pytest.raises(PolicyError) as err:
        parse_container_policy("c", {element: value})
    assert message in str(err.value)
    assert str(err.value).startswith(element)


def test_uk_hint():
    with pytest.raises(PolicyError, match="'gb'"):
        parse_requirement("cDAl", "uk")


@pytest.mark.parametrize(("attrs", "message"), [
    ({"cDAl": "jp"}, "that is a container requirement"),
    ({"eDAl": "jp,us"}, "exactly one value"),
    ({"eDAl": "eu"}, "unknown country code"),
    ({"eHRc": "fast"}, "is not a number"),
    ({"eHRgpu": "sometimes"}, "yes/no"),
])
def test_invalid_edge_attributes_are_rejected(attrs, message):
    with pytest.raises(PolicyError, match=message):
        parse_edge("e", attrs)


def test_percent_limit_reads_a_utilisation_requirement_in_either_form():
    assert percent_limit("cHRcu", 60) == 60.0
    assert percent_limit("cHRcu", "60") == 60.0
    assert percent_limit("cHRmu", "50%") == 50.0
    assert percent_limit("cHRcu", "*") is None and percent_limit("cHRcu", None) is None
    with pytest.raises(PolicyError, match="between 0 and 100"):
        percent_limit("cHRcu", "120")
    with pytest.raises(PolicyError, match="not a utilisation requirement"):
        percent_limit("cHRc", "1.6")
