"""Policy documents (YAML) -> validated domain objects; the shipped seed-002 tables."""

from __future__ import annotations

import pytest

from agents.audit.domain import PolicyError, country_codes, country_groups
from agents.audit.tables import load_policy_file, parse_document, seed002_tables


def test_shipped_tables_hold_tables_5_and_6():
    doc = seed002_tables()
    assert sorted(doc.edges) == [f"Edge{i}" for i in range(1, 9)]
    assert doc.containers["App1"].location == "Edge1"
    assert doc.containers["App1"].canonical() == {
        "cDAl": "jp,us,fr", "cDAo": "-caB", "cHRh": "*", "cHRt": "lxc", "cHRcu": "60",
        "cHRmu": "50", "cHRc": "1.6", "cHRm": "4", "cHRgpu": "*", "cHRac": "*", "cHRaf": "*"}
    assert {e: d.display["eDAl"] for e, d in doc.edges.items()} == {
        "Edge1": "jp", "Edge2": "de", "Edge3": "fr", "Edge4": "us", "Edge5": "us",
        "Edge6": "kr", "Edge7": "jp", "Edge8": "jp"}
    assert doc.edges["Edge4"].display["eDAo"] == "caB"
    assert {s.cpu_percent for s in doc.states.values()} == {40.0}
    assert {s.memory_percent for s in doc.states.values()} == {30.0}
    assert doc.published["audit_ms_range"] == [0.026, 0.212]


def test_country_tables():
    codes = country_codes()
    assert len(codes) == 249 and {"jp", "us", "fr", "kr", "gb"} <= codes and "uk" not in codes
    assert len(country_groups()["eu"]) == 27 and "no" in country_groups()["eea"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"edge": []}, "unknown key"),
    ({"edges": [{"name": "a", "attributes": {"eDAl": "jp"}, "owner": "x"}]}, "unknown key"),
    ({"edges": [{"attributes": {}}]}, "needs a 'name'"),
    ({"edges": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
    ({"edges": [{"name": "a", "attributes": {"eDAl": "xx"}}]}, "edge a: eDAl: unknown country"),
    ({"containers": [{"name": "c", "requirements": {"cHRm": "lots"}}]},
     "container c: cHRm: 'lots' is not a number"),
    ({"containers": [{"name": "c", "requirements": "cDAl=jp"}]}, "must be a mapping"),
    ({"edges": [{"name": "a"}], "monitor": [{"edge": "b", "cpu_percent": 1,
                                             "memory_percent": 1}]}, "not declared"),
    ({"edges": [{"name": "a"}], "monitor": [{"edge": "a", "cpu_percent": 120,
                                             "memory_percent": 1}]}, "between 0 and 100"),
    ({"edges": [{"name": "a"}], "monitor": [{"edge": "a"}]}, "needs numeric"),
    ([1, 2], "expected a mapping"),
])
def test_bad_documents_name_the_entry(doc, message):
    with pytest.raises(PolicyError, match=message):
        parse_document(doc)


def test_load_policy_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("edges:\n  - name: e1\n    region: r\n    attributes: {eDAl: JP, eHRc: 2}\n")
    doc = load_policy_file(path)
    assert doc.edges["e1"].display == {"eDAl": "jp", "eHRc": "2"}
    path.write_text("edges: [\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy_file(path)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
