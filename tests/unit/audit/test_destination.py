"""Target modes and the choice of a destination (seed 002, section 3.2; Figure 19, Table 7)."""

from __future__ import annotations

import pytest

from agents.audit.destination import Target, choose_destination
from agents.audit.domain import (
    ACCESS,
    InvalidTarget,
    UnknownEdge,
    UnknownRegion,
    parse_container_policy,
)
from agents.audit.tables import seed002_tables


@pytest.fixture(scope="module")
def paper():
    return seed002_tables()


def test_paper_named_edge_mode_matches_figure19(paper):
    app = paper.containers["App1"]
    published = paper.published["figure19"]
    for edge, expected in published.items():
        md = choose_destination(app, paper.edges, paper.states, Target.edge(edge), seed=None)
        assert md.permit is expected["permit"], edge
        assert [d.edge for d in md.tries] == [edge]
        if not expected["permit"]:
            assert [c.element for c in md.tries[0].failures] == [expected["failed"]]


@pytest.mark.parametrize("region", ["regionB", "regionC", "regionD"])
def test_region_mode_only_picks_permitted_edges_of_the_region(paper, region):
    app = paper.containers["App1"]
    seen_orders = set()
    for seed in range(40):
        md = choose_destination(app, paper.edges, paper.states, Target.region(region), seed=seed)
        assert md.permit
        assert md.tries[-1].permit and md.tries[-1].edge == md.chosen
        assert all(not d.permit for d in md.tries[:-1])
        assert all(paper.edges[d.edge].region == region for d in md.tries)
        assert [d.edge for d in md.tries] == list(md.candidates[: len(md.tries)])
        seen_orders.add(tuple((d.edge, d.permit) for d in md.tries))
    if region == "regionB":  # Table 7: both orders occur (Edge3 first, or Edge2 denied first)
        assert seen_orders == {(("Edge3", True),), (("Edge2", False), ("Edge3", True))}


def test_region_mode_is_reproducible_for_a_seed(paper):
    app = paper.containers["App1"]
    runs = [choose_destination(app, paper.edges, paper.states, Target.any(), seed=7)
            for _ in range(3)]
    assert len({tuple(d.edge for d in r.tries) for r in runs}) == 1


def test_any_mode_never_picks_denied_or_current_edge(paper):
    app = paper.containers["App1"]
    chosen = set()
    for seed in range(60):
        md = choose_destination(app, paper.edges, paper.states, Target.any(), seed=seed)
        assert md.chosen in {"Edge3", "Edge5", "Edge7", "Edge8"}
        assert "Edge1" not in md.candidates
        assert sorted(md.candidates) == [f"Edge{i}" for i in range(2, 9)]
        denied = [d.edge for d in md.tries[:-1]]
        assert set(denied) <= {"Edge2", "Edge4", "Edge6"}
        chosen.add(md.chosen)
    assert chosen == {"Edge3", "Edge5", "Edge7", "Edge8"}


def test_any_mode_denies_with_all_reasons_when_nothing_fits(paper):
    strict = parse_container_policy("App2", {"cDAl": "kr,de", "cDAo": "-caA,-caD"},
                                    location="Edge1")
    md = choose_destination(strict, paper.edges, paper.states, Target.any(), seed=3)
    assert not md.permit and md.chosen is None
    assert sorted(d.edge for d in md.tries) == [f"Edge{i}" for i in range(2, 9)]
    assert "no edge in any region permits the migration" in md.reasons()
    assert "Edge2: cDAo: caA is excluded" in md.reasons()


def test_mode_errors(paper):
    app = paper.containers["App1"]
    with pytest.raises(UnknownEdge):
        choose_destination(app, paper.edges, paper.states, Target.edge("Edge9"), seed=1)
    with pytest.raises(UnknownRegion):
        choose_destination(app, paper.edges, paper.states, Target.region("regionZ"), seed=1)
    with pytest.raises(InvalidTarget):
        choose_destination(app, paper.edges, paper.states, Target.edge("Edge1"), seed=1)
    md = choose_destination(app, paper.edges, paper.states, Target.region("regionA"), seed=1)
    assert not md.permit and md.tries == () and "no candidate edge" in md.note


def test_edge_not_shared_with_owner_is_denied_and_skipped(paper):
    app = paper.containers["App1"]
    md = choose_destination(app, paper.edges, paper.states, Target.edge("Edge3"), seed=1,
                            accessible={"Edge5"})
    assert not md.permit and [c.element for c in md.tries[0].failures] == [ACCESS]
    for seed in range(10):
        md = choose_destination(app, paper.edges, paper.states, Target.any(), seed=seed,
                                accessible={"Edge2", "Edge8"})
        assert set(md.candidates) == {"Edge2", "Edge8"} and md.chosen == "Edge8"
