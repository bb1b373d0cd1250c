"""The report's sentence on Figure 11-style costs (cost 1 = direct): which of ours lie on the
same side of direct as the paper's, and which do not; other units say nothing."""

from __future__ import annotations

from edgeferry.reports.render import cost_agreement
from edgeferry.reports.stats import Comparison


def _c(label: str, ours: float | None, published: float, unit: str = "cost") -> Comparison:
    return Comparison(label=label, part="p", quantity="metric m", where={}, reference=published,
                      unit=unit, source="seed 001", ours=ours, n=5,
                      ratio=None if ours is None else ours / published)


def test_costs_on_the_same_side_of_direct_agree_and_others_differ():
    text = cost_agreement([_c("ledger latency", 0.52, 0.9), _c("central latency", 2.1, 1.5),
                           _c("ledger throughput", 1.3, 0.6)])
    assert "agree in direction on ledger latency (both cheaper than direct)" in text
    assert "central latency (both dearer than direct)" in text
    assert "Differ on ledger throughput (ours 1.3, dearer than direct; published 0.6, cheaper " \
           "than direct)" in text


def test_no_cost_figures_no_sentence():
    assert cost_agreement([_c("t90", 0.4, 1.0, unit="s"), _c("no data", None, 0.9)]) == ""
    assert "No direction differs" in cost_agreement([_c("a", 0.5, 0.9)])
