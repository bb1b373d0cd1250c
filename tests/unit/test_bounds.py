"""edgeferry.bounds: the one physical bound, against hand-computed figures."""

from __future__ import annotations

import math

import pytest

from edgeferry.bounds import (
    ControlCosts,
    LinkBytes,
    TrialMeasurements,
    bound_s,
    downtime_bound_s,
    evaluate,
    trial_metrics,
)


def diff_order_trial() -> TrialMeasurements:
    # push link 40 Mbit/s carries 5 MB (all after the stop: the diff); pull link 20 Mbit/s
    # carries 55 MB of which 50 MB (the pre-pull) before the stop; control 0.3 s + 0.7 s
    return TrialMeasurements(
        bw_push_bps=40e6, bw_pull_bps=20e6,
        push=LinkBytes(wire=5_000_000, wire_after_stop=5_000_000, manifest=4_900_000,
                       manifest_after_stop=4_900_000),
        pull=LinkBytes(wire=55_000_000, wire_after_stop=5_000_000, manifest=54_000_000,
                       manifest_after_stop=4_900_000),
        control=ControlCosts(stop_s=0.3, start_s=0.7), total_s=30.0, downtime_s=5.0)


def test_bound_counts_every_byte_on_its_own_link() -> None:
    m = diff_order_trial()
    # 0.3 + 5e6*8/40e6 (1.0) + 55e6*8/20e6 (22.0) + 0.7
    assert bound_s(m) == pytest.approx(24.0)
    # 0.3 + 1.0 + 5e6*8/20e6 (2.0) + 0.7
    assert downtime_bound_s(m) == pytest.approx(4.0)
    b = evaluate(m)
    assert b.total_over_bound == pytest.approx(30.0 / 24.0)
    assert b.downtime_over_bound == pytest.approx(5.0 / 4.0)


def test_paper_order_downtime_bound_equals_bound() -> None:
    # everything moves after the stop: both bounds agree
    m = TrialMeasurements(
        bw_push_bps=8e6, bw_pull_bps=16e6,
        push=LinkBytes(wire=1_000_000, wire_after_stop=1_000_000),
        pull=LinkBytes(wire=4_000_000, wire_after_stop=4_000_000),
        control=ControlCosts(stop_s=0.5, start_s=0.5), total_s=4.0, downtime_s=3.5)
    # 0.5 + 1 + 2 + 0.5
    assert bound_s(m) == pytest.approx(4.0)
    assert downtime_bound_s(m) == pytest.approx(4.0)
    assert evaluate(m).downtime_over_bound == pytest.approx(0.875)


def test_manifest_bytes_do_not_enter_the_bound() -> None:
    m = diff_order_trial()
    other = TrialMeasurements(**{**m.__dict__, "push": LinkBytes(
        wire=5_000_000, wire_after_stop=5_000_000, manifest=1, manifest_after_stop=1)})
    assert bound_s(other) == bound_s(m)


def test_metrics_units_and_round_trip() -> None:
    m = diff_order_trial()
    again = TrialMeasurements.from_dict(m.to_dict())
    assert again == m
    out = trial_metrics(m)
    assert out["bound_s"] == pytest.approx(24.0)
    assert out["downtime_bound_s"] == pytest.approx(4.0)
    assert out["pull_wire_mb"] == pytest.approx(55.0)
    assert out["pull_wire_after_stop_mb"] == pytest.approx(5.0)
    assert out["pulled_mb"] == pytest.approx(54.0)
    assert out["bw_push_mbps"] == pytest.approx(40.0)
    assert out["bw_pull_mbps"] == pytest.approx(20.0)


def test_nonsense_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        LinkBytes(wire=10, wire_after_stop=11)
    with pytest.raises(ValueError):
        LinkBytes(wire=-1, wire_after_stop=0)
    with pytest.raises(ValueError):
        ControlCosts(stop_s=-0.1, start_s=0.0)
    m = diff_order_trial()
    with pytest.raises(ValueError):
        TrialMeasurements(**{**m.__dict__, "bw_pull_bps": 0.0})
    with pytest.raises(ValueError):
        TrialMeasurements(**{**m.__dict__, "bw_push_bps": math.inf})


def test_a_relayed_diff_counts_the_slower_link_after_the_stop_not_both() -> None:
    # the direct order: the diff crosses both links at once; the pre-pull before the stop
    # still crosses the pull link on its own
    m = TrialMeasurements(**{**diff_order_trial().__dict__, "relayed": True})
    # 0.3 + 50e6*8/20e6 (20.0) + max(1.0, 2.0) + 0.7
    assert bound_s(m) == pytest.approx(23.0)
    # 0.3 + max(5e6*8/40e6, 5e6*8/20e6) + 0.7
    assert downtime_bound_s(m) == pytest.approx(3.0)
    assert TrialMeasurements.from_dict(m.to_dict()) == m
    assert TrialMeasurements.from_dict({k: v for k, v in diff_order_trial().to_dict().items()
                                        if k != "relayed"}).relayed is False
