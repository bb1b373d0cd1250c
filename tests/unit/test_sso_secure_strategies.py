"""agents.sso.secure (WFs, chi, authorization, serial order) and agents.sso.strategies."""

from __future__ import annotations

import random
import statistics

import pytest

from agents.sso.secure import (
    SecureWorkflowNet,
    ServiceOffer,
    authorize,
    chi_from_offers,
    serial_order,
    validate,
)
from agents.sso.strategies import (
    PENALTY_FACTOR,
    AssignmentError,
    Strategy,
    assign,
    home_offer,
    sample_cost_ms,
)
from agents.sso.wfnet import firing_order, parse_process

OFFERS = [ServiceOffer("n1", "a", 10, 1), ServiceOffer("n2", "a", 30, 3),
          ServiceOffer("n2", "b", 5, 1), ServiceOffer("n3", "b", 1, 0.1)]


def by_service(comp, mapping):  # type: ignore[no-untyped-def]
    order = [t for stage in firing_order(comp) for t in stage]
    return [(comp.tasks[t], mapping[t]) for t in order]


def test_cooperative_cheapest_with_load_balancing() -> None:
    c = parse_process({"seq": ["a", "b", "a", "a"]})
    got = by_service(c, assign(c, OFFERS, Strategy.COOPERATIVE, home="n1"))
    # a: n1 (0+10 < 0+30); b: n3 (1 < 5); a: n1 (10+10=20 < 30);
    # a: n1 20+10=30 ties n2 0+30=30, ties go by node name -> n1
    assert got == [("a", "n1"), ("b", "n3"), ("a", "n1"), ("a", "n1")]
    c5 = parse_process({"seq": ["a", "a", "a", "a"]})
    # loads n1: 10, 20, 30 (tie with n2's 30 -> n1), then n1 40 vs n2 30 -> n2
    assert [n for _, n in by_service(c5, assign(c5, OFFERS, Strategy.COOPERATIVE, "n1"))] == \
        ["n1", "n1", "n1", "n2"]


def test_secure_only_nodes_chi_allows_and_non_cooperative_home() -> None:
    c = parse_process({"seq": ["a", "b"]})
    chi = {"n1": frozenset({"a", "f1"}), "n2": frozenset({"a", "b", "f1"}),
           "n3": frozenset({"a"})}                        # n3 may not run b
    got = by_service(c, assign(c, OFFERS, Strategy.SECURE, "n1", chi=chi, files=["f1"]))
    assert got == [("a", "n1"), ("b", "n2")]
    assert set(assign(c, OFFERS, Strategy.NON_COOPERATIVE, "n3").values()) == {"n3"}
    with pytest.raises(AssignmentError, match="no node offers service 'b' among the nodes chi"):
        assign(c, OFFERS, Strategy.SECURE, "n1", chi={"n1": frozenset({"a"})})
    with pytest.raises(AssignmentError, match="no node offers service 'zz'"):
        assign(parse_process("zz"), OFFERS, Strategy.COOPERATIVE, "n1")


def test_home_offer_penalty() -> None:
    assert home_offer(OFFERS, "n1", "a").cost_mean_ms == 10
    assert home_offer(OFFERS, "n1", "b").cost_mean_ms == 1 * PENALTY_FACTOR


def test_sample_cost_truncated_normal() -> None:
    rng = random.Random(3)
    xs = [sample_cost_ms(ServiceOffer("n", "s", 1.0, 10.0), rng) for _ in range(20000)]
    assert min(xs) >= 0
    # truncated at 0: mean = mu + sigma * phi(a) / (1 - Phi(a)), a = -0.1 -> 1 + 10 * 0.73533
    assert statistics.fmean(xs) == pytest.approx(8.353, abs=0.2)
    assert sample_cost_ms(ServiceOffer("n", "s", 5.0, 0.0), rng) == 5.0


def swf_for(chi: dict[str, frozenset[str]]) -> SecureWorkflowNet:
    c = parse_process({"seq": ["a", {"par": ["b", "a"]}]})
    routing = assign(c, OFFERS, Strategy.COOPERATIVE, "n1")
    return SecureWorkflowNet(c, frozenset({"n1", "n2", "n3"}), chi,
                             frozenset({"a", "b", "f1", "f2"}), routing)


def test_node_without_access_refused_naming_node_and_resource() -> None:
    chi = chi_from_offers(OFFERS, files={"n1": ["f1"], "n2": ["f1"], "n3": ["f1"]})
    ok = swf_for(chi)
    assert validate(ok) == [] and authorize(ok, ["f1"]) == []
    refused = authorize(ok, ["f2"])
    assert refused and all("has no access to file 'f2'" in r for r in refused)
    chi2 = dict(chi)
    chi2["n3"] = frozenset({"f1"})                       # n3 loses service b
    refusals = authorize(swf_for(chi2), ["f1"])
    assert len(refusals) == 1
    assert refusals[0].startswith("node 'n3' has no access to service 'b' (transition 't")


def test_validate_structural_constraints() -> None:
    swf = swf_for(chi_from_offers(OFFERS))
    swf.routing.pop(next(iter(swf.routing)))
    swf.nodes = frozenset({"n1", "n2", "n3", "n4"})
    swf.chi["n1"] = frozenset({"a", "secret"})
    problems = validate(swf)
    assert any("is not routed to any node" in p for p in problems)
    assert "node 'n4' has no chi entry" in problems
    assert "chi of node 'n1' names resources outside R: ['secret']" in problems


def test_serial_order() -> None:
    swf = swf_for(chi_from_offers(OFFERS))
    stages = firing_order(swf.composition)
    order = serial_order(swf, stages)
    assert sorted(order) == sorted(swf.composition.tasks)
    # stage 2 holds b (on n3) and a (on n1): n1 first
    assert [swf.composition.tasks[t] for t in order] == ["a", "a", "b"]
    with pytest.raises(ValueError, match="not a service transition"):
        serial_order(swf, [["nope"]])
